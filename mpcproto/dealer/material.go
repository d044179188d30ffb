package dealer

import (
	"fmt"
	"math/bits"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Material is one party's share of the material for one request: its parts
// in the order of the kind's layout (see the Sign*, Trunc* and Bilinear*
// part indices). Arithmetic parts are additive shares over Z_2^64, XOR parts
// are XOR shares of 64-bit words.
type Material struct {
	Req   Request
	Parts [][]uint64
}

// Part indices of bilinear material (MatMul, Conv, Mul).
const (
	BilinearA = iota // [size X] random
	BilinearB        // [size Y] random (empty with a fixed B)
	BilinearC        // [size out] = f(A, B)
	// BilinearAF is not dealt: a party with weight masks may append its
	// share of f(A, F) offline (F is public to the parties), see Source.Materials.
	BilinearAF
)

// Part indices of truncation material.
const (
	TruncR     = iota // [n] random
	TruncShift        // [n] = r >> f (logical shift)
	TruncMSB          // [n] = r >> 63 (0 or 1)
)

// Part indices of sign material. Levels 0..SignLevels-1 of the carry tree
// follow SignBits, each from SignLevel(l): the masks of the QuadVars
// variables of every quad (XOR-shared packed bits, random), then the
// products of the masks over QuadSubsets (derived).
const (
	SignR        = 0                                  // [n] random, arithmetic
	SignBits     = 1                                  // [n] the same r, XOR-shared
	SignRho      = 2 + SignLevels*(QuadVars+quadSubs) // [ceil(n/64)] random bits rho, XOR-shared, packed
	SignRhoArith = SignRho + 1                        // [n] rho as arithmetic 0/1
	SignA        = SignRho + 2                        // [n] random, arithmetic
	SignARho     = SignRho + 3                        // [n] = a * rho, arithmetic
	signParts    = SignRho + 4
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

// QuadSubsets lists, in increasing order, the variable sets of two or more
// variables contained in a monomial: the mask products the dealer supplies.
var QuadSubsets = quadSubsets()

func quadSubsets() []uint8 {
	var out []uint8
	for s := 0; s < 1<<QuadVars; s++ {
		if bits.OnesCount8(uint8(s)) < 2 {
			continue
		}
		for _, m := range QuadMonomials {
			if uint8(s)&^m == 0 {
				out = append(out, uint8(s))
				break
			}
		}
	}
	return out
}

// SignLevel is the index of the first part (the mask of variable 0) of
// carry level l.
func SignLevel(l int) int { return 2 + l*(QuadVars+quadSubs) }

// SignQuads is the number of quads per element merged at carry level l:
// 16, 4, 1 (64 bit groups -> 16 -> 4 -> 1).
func SignQuads(l int) int { return 16 >> (2 * l) }

// SignLevelWords is the number of words of every part of carry level l for
// n elements: one bit per quad, packed.
func SignLevelWords(l, n int) int { return PackedLen(n * SignQuads(l)) }

// Part indices of max material: parts 0 .. SignLevel(SignLevels)-1 are laid
// out as sign material for the K(K-1)/2·N comparisons (SignR, SignBits, the
// carry levels); then MaxAnd(l) (u, v, u AND v) for each level of the AND
// tree (MaxAndLevels), then the per-candidate rho, rho as 0/1, a and a*rho
// for the K·N candidates, at MaxRho(K) .. MaxRho(K)+3.

// MaxAnd is the index of the u part of the fan-in AND level l.
func MaxAnd(l int) int { return SignLevel(SignLevels) + 3*l }

// MaxRho is the index of the packed random bits rho of max material for
// windows of k values; rho as 0/1, a and a*rho follow.
func MaxRho(k int) int { return MaxAnd(len(MaxAndLevels(k))) }

// MaxPairs is the number of pairwise comparisons in a window of k values.
func MaxPairs(k int) int { return k * (k - 1) / 2 }

// PackedLen is the number of words that hold n packed bits.
func PackedLen(n int) int { return (n + 63) / 64 }

// PartSizes is the number of words of each part of the material for r, in
// layout order: what a Provider must return for r.
func (r Request) PartSizes() ([]int, error) {
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
}

func (r Request) layout() ([]part, error) {
	switch r.Kind {
	case KindMatMul, KindConv, KindMul:
		out, err := r.OutShape()
		if err != nil {
			return nil, err
		}
		nb := tensor.Size(r.Y)
		if r.FixedB != "" {
			nb = 0 // the long-term mask serves as B
		}
		return []part{{n: tensor.Size(r.X)}, {n: nb}, {n: tensor.Size(out), derived: true}}, nil
	case KindTrunc:
		if r.N < 0 {
			return nil, fmt.Errorf("negative size %d", r.N)
		}
		return []part{{n: r.N}, {n: r.N, derived: true}, {n: r.N, derived: true}}, nil
	case KindSign:
		n := r.N
		if n < 0 {
			return nil, fmt.Errorf("negative size %d", n)
		}
		ps := make([]part, signParts)
		ps[SignR] = part{n: n}
		ps[SignBits] = part{n: n, xor: true, derived: true}
		for l := range SignLevels {
			w := SignLevelWords(l, n)
			for v := range QuadVars + quadSubs {
				ps[SignLevel(l)+v] = part{n: w, xor: true, derived: v >= QuadVars}
			}
		}
		ps[SignRho] = part{n: PackedLen(n), xor: true}
		ps[SignRhoArith] = part{n: n, derived: true}
		ps[SignA] = part{n: n}
		ps[SignARho] = part{n: n, derived: true}
		return ps, nil
	case KindMax:
		if r.N < 0 || r.K < 2 {
			return nil, fmt.Errorf("max over %d windows of %d values", r.N, r.K)
		}
		sign, err := Request{Kind: KindSign, N: MaxPairs(r.K) * r.N}.layout()
		if err != nil {
			return nil, err
		}
		ps := sign[:SignRho]
		for _, ands := range MaxAndLevels(r.K) {
			w := PackedLen(ands * r.K * r.N)
			ps = append(ps, part{n: w, xor: true}, part{n: w, xor: true}, part{n: w, xor: true, derived: true})
		}
		c := r.K * r.N
		return append(ps, part{n: PackedLen(c), xor: true}, part{n: c, derived: true}, part{n: c},
			part{n: c, derived: true}), nil
	}
	return nil, fmt.Errorf("unknown material kind %d", uint8(r.Kind))
}

// derive computes the derived parts of r's material from its random parts
// (the plaintext values, in vals, indexed like the layout) and, for a
// request with a fixed B, the weight masks.
func (r Request) derive(enc fixed.Encoding, vals [][]uint64, masks map[string][]uint64) error {
	switch r.Kind {
	case KindMatMul, KindConv, KindMul:
		a := &tensor.Dense[uint64]{Shape: r.X, Data: vals[BilinearA]}
		b := &tensor.Dense[uint64]{Shape: r.Y, Data: vals[BilinearB]}
		if r.FixedB != "" {
			mb, ok := masks[r.FixedB]
			if !ok || len(mb) != tensor.Size(r.Y) {
				return fmt.Errorf("no mask for weight %q of shape %v", r.FixedB, r.Y)
			}
			b.Data = mb
		}
		c, err := r.Bilinear(a, b)
		if err != nil {
			return err
		}
		vals[BilinearC] = c.Data
	case KindTrunc:
		for i, v := range vals[TruncR] {
			vals[TruncShift][i] = v >> enc.Frac
			vals[TruncMSB][i] = v >> 63
		}
	case KindSign:
		deriveSign(vals, 0, SignRho)
	case KindMax:
		deriveSign(vals, len(MaxAndLevels(r.K)), MaxRho(r.K))
	default:
		return fmt.Errorf("unknown material kind %d", uint8(r.Kind))
	}
	return nil
}

// deriveSign fills the derived parts of sign or max material: the bits of
// r, the mask products of the carry levels, the products of the fanIn AND
// triples after them (max material), and rho as 0/1 and a*rho from rho at
// index rhoAt.
func deriveSign(vals [][]uint64, fanIn, rhoAt int) {
	copy(vals[SignBits], vals[SignR])
	for l := range SignLevels {
		base := SignLevel(l)
		for j, sub := range QuadSubsets {
			dst := vals[base+QuadVars+j]
			for w := range dst {
				v := ^uint64(0)
				for x := range QuadVars {
					if sub&(1<<x) != 0 {
						v &= vals[base+x][w]
					}
				}
				dst[w] = v
			}
		}
	}
	for l := range fanIn {
		u, v, uv := vals[MaxAnd(l)], vals[MaxAnd(l)+1], vals[MaxAnd(l)+2]
		for i := range uv {
			uv[i] = u[i] & v[i]
		}
	}
	rho, rhoA, a, arho := vals[rhoAt], vals[rhoAt+1], vals[rhoAt+2], vals[rhoAt+3]
	for i := range rhoA {
		bit := (rho[i/64] >> (i % 64)) & 1
		rhoA[i] = bit
		arho[i] = a[i] * bit
	}
}
