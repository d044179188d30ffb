package dealer

import (
	"fmt"
	"math/bits"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Material is one party's share of the material for one request: its parts
// in the order of the kind's layout (private to this package: a Provider
// other than Source lays them out as Deal does, and Check says where one
// differs). Arithmetic parts are additive shares over Z_2^64, XOR parts
// are XOR shares of 64-bit words. Read it through its typed views
// (Triple, Trunc, Comparison).
type Material struct {
	Req   Request
	Parts [][]uint64
}

// Part indices of bilinear material (MatMul, Conv, Mul).
const (
	bilinearA = iota // [size X] random (empty with a fixed A)
	bilinearB        // [size Y] random (empty with a fixed B)
	bilinearC        // [size out] = f(A, B)
	// bilinearAF is not dealt: a party with weight masks appends its share
	// of f(A, F) (fixed B) or f(E, B) (fixed A) offline (E, F are public
	// to the parties), see Source.Precompute.
	bilinearAF
)

// Part indices of truncation material.
const (
	truncR     = iota // [n] random
	truncShift        // [n] = r >> f (logical shift)
	truncMSB          // [n] = r >> 63 (0 or 1)
)

// Part indices of sign material. Levels 0..SignLevels-1 of the carry tree
// follow signBits, each from signLevel(l): the masks of the QuadVars
// variables of every quad (XOR-shared packed bits, random), then the
// products of the masks over quadSubsets (derived).
const (
	signR        = 0                                  // [n] random, arithmetic
	signBits     = 1                                  // [n] the same r, XOR-shared
	signRho      = 2 + SignLevels*(QuadVars+quadSubs) // [ceil(n/64)] random bits rho, XOR-shared, packed
	signRhoArith = signRho + 1                        // [n] rho as arithmetic 0/1
	signA        = signRho + 2                        // [n] random, arithmetic
	signARho     = signRho + 3                        // [n] = a * rho, arithmetic
	signParts    = signRho + 4
)

// The carry tree merges four adjacent groups of bits at a time: with
// generate/propagate bits (g3, p3) of the high group down to (g0, p0),
//
//	G = g3 ^ p3·g2 ^ p3·p2·g1 ^ p3·p2·p1·g0,   P = p3·p2·p1·p0
//
// (the terms are exclusive, so OR is XOR). The seven variables in products
// are opened masked once, and each monomial is evaluated in the same round
// from the masks' products: prod(x) = XOR over S ⊆ M of
// prod_{x ∉ S}(x ^ u_x) · prod_{x ∈ S} u_x.
const (
	// QuadVars is the number of masked variables per quad: g0, g1, g2,
	// p0, p1, p2, p3 (variable i is bit i of a subset).
	QuadVars = 7
	quadSubs = 22
)

// QuadMonomials are the four products of a quad merge, as variable sets:
// p3·g2, p3·p2·g1, p3·p2·p1·g0 (for G) and p3·p2·p1·p0 (for P).
var QuadMonomials = [4]uint8{1<<6 | 1<<2, 1<<6 | 1<<5 | 1<<1, 1<<6 | 1<<5 | 1<<4 | 1<<0, 1<<6 | 1<<5 | 1<<4 | 1<<3}

// quadSubsets lists, in increasing order, the variable sets of two or more
// variables contained in a monomial: the mask products the dealer
// supplies; subsetIndex is the position of a set in it (-1 when absent).
var quadSubsets, subsetIndex = quadProducts()

func quadProducts() ([]uint8, [1 << QuadVars]int) {
	var out []uint8
	var index [1 << QuadVars]int
	for s := 0; s < 1<<QuadVars; s++ {
		index[s] = -1
		if bits.OnesCount8(uint8(s)) < 2 {
			continue
		}
		for _, m := range QuadMonomials {
			if uint8(s)&^m == 0 {
				index[s] = len(out)
				out = append(out, uint8(s))
				break
			}
		}
	}
	return out, index
}

// signLevel is the index of the first part (the mask of variable 0) of
// carry level l.
func signLevel(l int) int { return 2 + l*(QuadVars+quadSubs) }

// signQuads is the number of quads per element merged at carry level l:
// 16, 4, 1 (64 bit groups -> 16 -> 4 -> 1).
func signQuads(l int) int { return 16 >> (2 * l) }

// signLevelWords is the number of words of every part of carry level l for
// n elements: one bit per quad, packed.
func signLevelWords(l, n int) int { return packedLen(n * signQuads(l)) }

// Part indices of max material: parts 0 .. signLevel(SignLevels)-1 are laid
// out as sign material for the K(K-1)/2·N comparisons (signR, signBits, the
// carry levels); then maxAnd(l) (u, v, u AND v) for each level of the AND
// tree (maxAndLevels), then the per-candidate rho, rho as 0/1, a and a*rho
// for the K·N candidates, at maxRho(K) .. maxRho(K)+3.

// maxAnd is the index of the u part of the fan-in AND level l.
func maxAnd(l int) int { return signLevel(SignLevels) + 3*l }

// maxRho is the index of the packed random bits rho of max material for
// windows of k values; rho as 0/1, a and a*rho follow.
func maxRho(k int) int { return maxAnd(len(maxAndLevels(k))) }

// maxPairs is the number of pairwise comparisons in a window of k values.
func maxPairs(k int) int { return k * (k - 1) / 2 }

// packedLen is the number of words that hold n packed bits.
func packedLen(n int) int { return (n + 63) / 64 }

// partSizes is the number of words of each part of the material for r, in
// layout order: what a Provider must return for r.
func (r Request) partSizes() ([]int, error) {
	layout, err := r.layout()
	if err != nil {
		return nil, err
	}
	out := make([]int, len(layout))
	for i, pt := range layout {
		out[i] = pt.n
	}
	return out, nil
}

type part struct {
	n       int
	xor     bool // XOR-shared (else additive)
	derived bool // computed from the random parts (else drawn at random)
	// own marks a random part that is each party's own draw, not a share
	// (a DCF root seed): the dealer keeps every party's draw.
	own bool
	// common marks a derived part every party receives in full (a DCF's
	// correction words): it is sent, not drawn, to every party.
	common bool
}

func (r Request) layout() ([]part, error) {
	switch r.Kind {
	case KindMatMul, KindConv, KindMul:
		out, err := r.outShape()
		if err != nil {
			return nil, err
		}
		na, nb := tensor.Size(r.X), tensor.Size(r.Y)
		if r.FixedA != "" && r.FixedB != "" {
			return nil, fmt.Errorf("both operands fixed (%s and %s)", r.FixedA, r.FixedB)
		}
		if r.FixedA != "" {
			na = 0 // the long-term mask serves as A
		}
		if r.FixedB != "" {
			nb = 0 // the long-term mask serves as B
		}
		return []part{{n: na}, {n: nb}, {n: tensor.Size(out), derived: true}}, nil
	case KindTrunc:
		if r.N < 0 {
			return nil, fmt.Errorf("negative size %d", r.N)
		}
		return []part{{n: r.N}, {n: r.N, derived: true}, {n: r.N, derived: true}}, nil
	case KindSign:
		if r.N < 0 {
			return nil, fmt.Errorf("negative size %d", r.N)
		}
		return append(compareLayout(r.N), selectLayout(r.N)...), nil
	case KindMax:
		if r.N < 0 || r.K < 2 {
			return nil, fmt.Errorf("max over %d windows of %d values", r.N, r.K)
		}
		ps := compareLayout(maxPairs(r.K) * r.N)
		for _, ands := range maxAndLevels(r.K) {
			w := packedLen(ands * r.K * r.N)
			ps = append(ps, part{n: w, xor: true}, part{n: w, xor: true}, part{n: w, xor: true, derived: true})
		}
		return append(ps, selectLayout(r.K*r.N)...), nil
	case KindReluGate, KindTruncReluGate:
		if r.N < 0 {
			return nil, fmt.Errorf("negative size %d", r.N)
		}
		return gateLayout(r.Kind, r.N), nil
	}
	return nil, fmt.Errorf("unknown material kind %d", uint8(r.Kind))
}

// compareLayout is the layout of the comparisons of n elements: r, its
// bits and the carry levels (parts signR .. signRho-1).
func compareLayout(n int) []part {
	ps := make([]part, signRho, signParts)
	ps[signR] = part{n: n}
	ps[signBits] = part{n: n, xor: true, derived: true}
	for l := range SignLevels {
		w := signLevelWords(l, n)
		for v := range QuadVars + quadSubs {
			ps[signLevel(l)+v] = part{n: w, xor: true, derived: v >= QuadVars}
		}
	}
	return ps
}

// selectLayout is the layout of the random bits rho of n elements shared
// both ways and the pairs (a, a*rho).
func selectLayout(n int) []part {
	return []part{{n: packedLen(n), xor: true}, {n: n, derived: true}, {n: n}, {n: n, derived: true}}
}

// derive computes the derived parts of r's material from its random parts
// (the plaintext values, in vals, indexed like the layout) and, for a
// request with a fixed B, the weight masks.
func (r Request) derive(enc fixed.Encoding, vals [][]uint64, masks map[string][]uint64) error {
	m := &Material{Req: r, Parts: vals}
	switch r.Kind {
	case KindMatMul, KindConv, KindMul:
		t := m.Triple()
		a := &tensor.Dense[uint64]{Shape: r.X, Data: t.A}
		b := &tensor.Dense[uint64]{Shape: r.Y, Data: t.B}
		if r.FixedB != "" {
			mb, ok := masks[r.FixedB]
			if !ok || len(mb) != tensor.Size(r.Y) {
				return fmt.Errorf("no mask for weight %q of shape %v", r.FixedB, r.Y)
			}
			b.Data = mb
		}
		if r.FixedA != "" {
			ma, ok := masks[r.FixedA]
			if !ok || len(ma) != tensor.Size(r.X) {
				return fmt.Errorf("no mask for weight %q of shape %v", r.FixedA, r.X)
			}
			a.Data = ma
		}
		c, err := r.Bilinear(a, b)
		if err != nil {
			return err
		}
		m.Parts[bilinearC] = c.Data
	case KindTrunc:
		t := m.Trunc()
		for i, v := range t.R {
			t.Shift[i] = v >> enc.Frac
			t.MSB[i] = v >> 63
		}
	case KindSign, KindMax:
		deriveComparison(m.Comparison())
	case KindReluGate, KindTruncReluGate:
		return deriveGate(m, enc.Frac)
	default:
		return fmt.Errorf("unknown material kind %d", uint8(r.Kind))
	}
	return nil
}

// deriveComparison fills the derived parts of sign or max material: the
// bits of r, the mask products of the carry levels, the products of the
// AND triples (max material), and rho as 0/1 and a*rho from rho.
func deriveComparison(c Comparison) {
	copy(c.Bits, c.R)
	for _, lv := range c.Levels {
		var u [QuadVars][]uint64
		for x := range u {
			u[x] = lv.Mask(1 << x)
		}
		for _, sub := range quadSubsets {
			dst := lv.Mask(sub)
			for w := range dst {
				v := ^uint64(0)
				for x := range QuadVars {
					if sub&(1<<x) != 0 {
						v &= u[x][w]
					}
				}
				dst[w] = v
			}
		}
	}
	for _, t := range c.Ands {
		for i := range t.UV {
			t.UV[i] = t.U[i] & t.V[i]
		}
	}
	for i := range c.RhoArith {
		bit := (c.Rho[i/64] >> (i % 64)) & 1
		c.RhoArith[i] = bit
		c.ARho[i] = c.A[i] * bit
	}
}
