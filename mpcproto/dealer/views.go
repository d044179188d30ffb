package dealer

import (
	"fmt"
	"math/bits"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Typed views of a party's material: what the engine reads instead of part
// indices. A view shares the material's words (no copy); take it from
// material that passed Check for its request.

// Triple is a party's share of a bilinear (Beaver) triple of a MatMul,
// Conv or Mul request: A and B uniform, C = f(A, B) for the request's
// bilinear map f. With weight masks (Request.FixedB) B is empty, the
// weight's long-term mask serving as B, and AF is f(A, F) once the party
// has precomputed it (Source.Precompute), else nil; with a fixed A
// (Request.FixedA) A is empty and EB is f(E, B), E = W - A the opened
// difference of the left weight, once precomputed.
type Triple struct{ A, B, C, AF, EB []uint64 }

// TruncPair is a party's share of truncation material: R uniform,
// Shift = R >> f (a logical shift) and MSB = R >> 63 (0 or 1).
type TruncPair struct{ R, Shift, MSB []uint64 }

// Comparison is a party's share of the material of a vectorised sign test
// (KindSign, one comparison per element) or max (KindMax, the K(K-1)/2
// pairwise comparisons of every window).
type Comparison struct {
	// R is uniform (additive shares), Bits the same r XOR-shared.
	R, Bits []uint64
	// Levels are the levels of the carry tree, 64 -> 16 -> 4 -> 1 groups.
	Levels [SignLevels]CarryLevel
	// Ands are a max's AND triples, one per level of the tree that ANDs
	// each candidate's K-1 comparison bits (none for a sign test).
	Ands []AndTriple
	// Rho holds one random bit per element (sign) or candidate (max),
	// XOR-shared and packed 64 to a word; RhoArith the same bits as
	// additive shares of 0/1; A is uniform and ARho = A·rho.
	Rho, RhoArith, A, ARho []uint64
}

// CarryLevel is the material of one level of the carry tree: the masks
// u_x of the QuadVars variables of every quad and the products of masks
// the monomials (QuadMonomials) need, XOR-shared, one bit per quad of
// every element, packed.
type CarryLevel struct {
	// Quads is the number of quads per element merged at this level.
	Quads int
	parts [][]uint64 // the QuadVars masks, then the products over quadSubsets
}

// Mask returns the share of the product of the masks of the variables in
// set (bit x for variable x): a variable's own mask, or a product of two
// or more that a monomial contains.
func (l CarryLevel) Mask(set uint8) []uint64 {
	if set >= 1<<QuadVars || set == 0 {
		return nil
	}
	if bits.OnesCount8(set) == 1 {
		return l.parts[bits.TrailingZeros8(set)]
	}
	if j := subsetIndex[set]; j >= 0 {
		return l.parts[QuadVars+j]
	}
	return nil
}

// AndTriple is a party's share of AND triples on packed bits: U and V
// uniform, UV = U AND V, all XOR-shared.
type AndTriple struct{ U, V, UV []uint64 }

// Triple is the material's bilinear triple.
func (m *Material) Triple() Triple {
	t := Triple{A: m.Parts[bilinearA], B: m.Parts[bilinearB], C: m.Parts[bilinearC]}
	if m.Req.FixedB != "" && len(m.Parts) > bilinearAF {
		t.AF = m.Parts[bilinearAF]
	}
	if m.Req.FixedA != "" && len(m.Parts) > bilinearAF {
		t.EB = m.Parts[bilinearAF]
	}
	return t
}

// Trunc is the material's truncation pair.
func (m *Material) Trunc() TruncPair {
	return TruncPair{R: m.Parts[truncR], Shift: m.Parts[truncShift], MSB: m.Parts[truncMSB]}
}

// Comparison is the material of a sign test or a max.
func (m *Material) Comparison() Comparison {
	c := Comparison{R: m.Parts[signR], Bits: m.Parts[signBits]}
	for l := range c.Levels {
		base := signLevel(l)
		c.Levels[l] = CarryLevel{Quads: signQuads(l), parts: m.Parts[base : base+QuadVars+quadSubs]}
	}
	rho := signRho
	if m.Req.Kind == KindMax {
		for l := range maxAndLevels(m.Req.K) {
			at := maxAnd(l)
			c.Ands = append(c.Ands, AndTriple{U: m.Parts[at], V: m.Parts[at+1], UV: m.Parts[at+2]})
		}
		rho = maxRho(m.Req.K)
	}
	c.Rho, c.RhoArith, c.A, c.ARho = m.Parts[rho], m.Parts[rho+1], m.Parts[rho+2], m.Parts[rho+3]
	return c
}

// Check reports whether m, served for want, was dealt for the same
// request and holds the parts want's kind lays out, each of the right
// size (and a precomputed f(A, F) of the right size, if any): the engine
// checks material from any Provider with it before reading its views.
func (m *Material) Check(want Request) error {
	sizes, err := want.partSizes()
	if err != nil {
		return err
	}
	if m == nil || len(m.Parts) < len(sizes) {
		return fmt.Errorf("material for %s has too few parts", want)
	}
	if !m.Req.Same(want) {
		return fmt.Errorf("material for %s was dealt for %s", want, m.Req)
	}
	for i, n := range sizes {
		if len(m.Parts[i]) != n {
			return fmt.Errorf("material for %s: part %d holds %d words, want %d", want, i, len(m.Parts[i]), n)
		}
	}
	if len(m.Parts) > bilinearAF && want.fixed() != "" {
		if out, err := want.outShape(); err != nil || len(m.Parts[bilinearAF]) != tensor.Size(out) {
			return fmt.Errorf("material for %s: precomputed part has the wrong size", want)
		}
	}
	return nil
}
