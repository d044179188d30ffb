package dealer

import (
	"fmt"

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

// Part indices of sign material. SignAnd(l) is the first of the three parts
// (u, v, u AND v; XOR-shared words) of the AND triples of carry level l.
const (
	SignR    = 0 // [n] random, arithmetic
	SignBits = 1 // [n] the same r, XOR-shared
	// parts 2 .. 2+3*SignLevels-1: AND triples
	SignRho      = 2 + 3*SignLevels // [ceil(n/64)] random bits rho, XOR-shared, packed
	SignRhoArith = SignRho + 1      // [n] rho as arithmetic 0/1
	SignA        = SignRho + 2      // [n] random, arithmetic
	SignARho     = SignRho + 3      // [n] = a * rho, arithmetic
	signParts    = SignRho + 4
)

// SignAnd is the index of the u part of carry level l's AND triples; v and
// u AND v follow it.
func SignAnd(l int) int { return 2 + 3*l }

// SignAndBits is the number of bits each of n elements contributes to one
// operand of level l of the carry circuit: the circuit halves the number of
// bit groups of every element at each level, 64 -> 32 -> ... -> 1, so level
// l combines 32 >> l pairs of groups per element.
func SignAndBits(l int) int { return 32 >> l }

// SignAndWidth is the number of words of level l's AND triples for n
// elements: the operand bits of every element packed together, once for
// the generate and once for the propagate bits (the last level needs the
// generate bit only).
func SignAndWidth(l, n int) int {
	w := PackedLen(n * SignAndBits(l))
	if l == SignLevels-1 {
		return w
	}
	return 2 * w
}

// Part indices of max material: parts 0 .. SignAnd(SignLevels)-1 are laid
// out as sign material for the K(K-1)/2·N comparisons (SignR, SignBits,
// SignAnd); then MaxAnd(l) (u, v, u AND v) for each level of the AND tree
// (MaxAndLevels), then the per-candidate rho, rho as 0/1, a and a*rho for
// the K·N candidates, at MaxRho(K) .. MaxRho(K)+3.

// MaxAnd is the index of the u part of the fan-in AND level l.
func MaxAnd(l int) int { return 2 + 3*SignLevels + 3*l }

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
			w := SignAndWidth(l, n)
			ps[SignAnd(l)] = part{n: w, xor: true}
			ps[SignAnd(l)+1] = part{n: w, xor: true}
			ps[SignAnd(l)+2] = part{n: w, xor: true, derived: true}
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
		deriveSign(vals, SignLevels, SignRho)
	case KindMax:
		deriveSign(vals, SignLevels+len(MaxAndLevels(r.K)), MaxRho(r.K))
	default:
		return fmt.Errorf("unknown material kind %d", uint8(r.Kind))
	}
	return nil
}

// deriveSign fills the derived parts of sign or max material: the bits of
// r, the products of the AND triples (levels of them from SignAnd(0) on),
// and rho as 0/1 and a*rho from rho at index rhoAt.
func deriveSign(vals [][]uint64, levels, rhoAt int) {
	copy(vals[SignBits], vals[SignR])
	for l := range levels {
		u, v, uv := vals[SignAnd(l)], vals[SignAnd(l)+1], vals[SignAnd(l)+2]
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
