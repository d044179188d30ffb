package engine

import (
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// piecewise evaluates a piecewise polynomial (plan.Piecewise: Clip,
// LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid, SiLU) on every
// element of in, in the rounds of a ReLU (5) whatever the number of
// pieces:
//
//  1. open c_j = x − t_j + r_j for the J thresholds of every element (one
//     vectorised sign test of J·n comparisons) and, when a piece has
//     degree 2, E = x − A and F = x − B of a triple for x·x; with a
//     pending input (a product before its truncation, or HardSigmoid's
//     αx + β) the comparisons take it as it is, thresholds scaled by 2^f,
//     and its truncation is opened in the same round;
//  2. carry round 1: the truncation of x² (or, without x², of the pieces
//     that need one);
//  3. carry round 2: the truncation of the pieces that need one, each
//     c0 + c1·u + c2·u² with u = x − M and u² = x² − 2M·x + M² (exact:
//     2M is an integer) times the encoded coefficients;
//  4. carry round 3: d = (v_i − v_base) − a for every piece i but the base
//     (an exact piece, evaluated for every element: a constant, x, or an
//     integer multiple of it);
//  5. with b_j = [x >= t_j] (XOR-shared), the indicator of piece i is
//     NOT b_0 (below t_0), b_{i−1} XOR b_i, or b_{J−1} (the last piece):
//     exactly one is 1, so y = v_base + Σ_i (v_i − v_base)·ind_i, each
//     product by a shared bit in one round (mulBit: open ind XOR rho).
//
// A piece's value may be meaningless where the piece does not hold (x²
// beyond the truncation's range, say): it is multiplied by an exact 0.
// Every opened value is masked by fresh dealer randomness: r_j, the
// triple, the truncations' r, a, rho. It returns the truncated input (for
// a pending input) and the result.
func (p *party) piecewise(pw *plan.Piecewise, in *shared, pending bool) (x, y []uint64, err error) {
	n := len(in.Data)
	base := pw.Base()
	if base < 0 {
		return nil, nil, fmt.Errorf("piecewise function without an exact piece")
	}
	pv := in.Data
	if pw.Pre != nil {
		if pv, err = p.affine(pw.Pre, in.Data); err != nil {
			return nil, nil, err
		}
		pending = true
	}
	if pending && (pw.Square() || pw.Truncated() > 0) {
		return nil, nil, fmt.Errorf("piecewise function with truncated pieces on a pending input")
	}
	mt, err := p.requestPieceMaterial(pw, in, pending)
	if err != nil {
		return nil, nil, err
	}
	c, x, z2, err := p.pieceFirstRound(pw, mt, pv, pending)
	if err != nil {
		return nil, nil, err
	}
	cr := &pieceCarry{p: p, pw: pw, mt: mt, base: base, shape: in.Shape, x: x, z2: z2, vals: make([][]uint64, len(pw.Pieces))}
	msb, err := p.msbWith(mt.cmp, c, cr.side)
	if err != nil {
		return nil, nil, err
	}
	sel, err := p.mulBit(mt.cmp, cr.diffs, cr.d, p.pieceIndicators(pw, msb, base, n))
	if err != nil {
		return nil, nil, err
	}
	y = cr.vals[base]
	for k, v := range sel {
		y[k%n] += v
	}
	return x, y, nil
}

// pieceMaterial is the dealer material of a piecewise evaluation.
type pieceMaterial struct {
	trunc *dealer.Material  // the truncation of a pending input, or nil
	cmp   dealer.Comparison // the J·n comparisons
	mul   *dealer.Material  // the triple for x·x, or nil
	sq    *dealer.Material  // the truncation of x·x, or nil
	vals  *dealer.Material  // the truncation of the pieces that need one, or nil
}

// requestPieceMaterial asks the dealer for the material of pw on in, in this
// order: the truncation of a pending input, the comparisons, the triple
// and truncation of x·x, the truncation of the pieces that need one.
func (p *party) requestPieceMaterial(pw *plan.Piecewise, in *shared, pending bool) (*pieceMaterial, error) {
	n := len(in.Data)
	mt := &pieceMaterial{}
	var err error
	if pending {
		if mt.trunc, err = p.next(dealer.Request{Kind: dealer.KindTrunc, N: n}); err != nil {
			return nil, err
		}
	}
	ms, err := p.next(dealer.Request{Kind: dealer.KindSign, N: len(pw.Thresholds) * n})
	if err != nil {
		return nil, err
	}
	mt.cmp = ms.Comparison()
	if pw.Square() {
		if mt.mul, err = p.next(dealer.Request{Kind: dealer.KindMul, X: in.Shape, Y: in.Shape}); err != nil {
			return nil, err
		}
		if mt.sq, err = p.next(dealer.Request{Kind: dealer.KindTrunc, N: n}); err != nil {
			return nil, err
		}
	}
	if k := pw.Truncated(); k > 0 {
		if mt.vals, err = p.next(dealer.Request{Kind: dealer.KindTrunc, N: k * n}); err != nil {
			return nil, err
		}
	}
	return mt, nil
}

// pieceFirstRound is round 1 of a piecewise evaluation on pv: it opens the
// masked comparisons c, the truncation of a pending input and, with a
// degree-2 piece, E and F of x·x. It returns the opened comparisons, x (pv
// truncated when pending) and x·x with 2f fractional bits (nil without a
// degree-2 piece).
func (p *party) pieceFirstRound(pw *plan.Piecewise, mt *pieceMaterial, pv []uint64, pending bool) (c, x, z2 []uint64, err error) {
	c, err = p.pieceComparisons(pw, mt.cmp, pv, pending)
	if err != nil {
		return nil, nil, nil, err
	}
	vs := []vec{arith(c)}
	if pending {
		vs = append(vs, arith(p.truncMask(mt.trunc.Trunc(), pv)))
	}
	x = pv
	var sq dealer.Triple
	if mt.mul != nil {
		sq = mt.mul.Triple()
		vs = append(vs, arith(subFrom(x, sq.A)), arith(subFrom(x, sq.B)))
	}
	op, err := p.open(vs...)
	if err != nil {
		return nil, nil, nil, err
	}
	if pending {
		x = p.truncFinish(mt.trunc.Trunc(), op[1])
	}
	if mt.mul != nil {
		E, F := op[len(op)-2], op[len(op)-1]
		z2 = make([]uint64, len(x))
		for i := range z2 {
			z2[i] = sq.C[i] + E[i]*sq.B[i] + sq.A[i]*F[i]
			if p.lead() {
				z2[i] += E[i] * F[i]
			}
		}
	}
	return op[0], x, z2, nil
}

// pieceComparisons is c_j = x − t_j + r_j for the J thresholds of every
// element of pv (threshold j's at j·n), thresholds scaled by 2^f for a
// pending input.
func (p *party) pieceComparisons(pw *plan.Piecewise, cm dealer.Comparison, pv []uint64, pending bool) ([]uint64, error) {
	n := len(pv)
	shift := uint(0)
	if pending {
		shift = p.enc.Frac
	}
	c := make([]uint64, len(pw.Thresholds)*n)
	for j, t := range pw.Thresholds {
		te, err := p.enc.EncodeValue(t)
		if err != nil {
			return nil, fmt.Errorf("threshold %v: %w", t, err)
		}
		te <<= shift
		for i, v := range pv {
			c[j*n+i] = v + cm.R[j*n+i]
			if p.lead() {
				c[j*n+i] -= te
			}
		}
	}
	return c, nil
}

// pieceCarry is the state of a piecewise evaluation through the carry
// rounds of its comparisons, where side opens the truncations of x·x and
// of the pieces, and d.
type pieceCarry struct {
	p     *party
	pw    *plan.Piecewise
	mt    *pieceMaterial
	base  int        // the exact piece every other is compared with
	shape []int      // the input's shape
	x     []uint64   // the input
	z2    []uint64   // x·x with 2f fractional bits, or nil
	x2    []uint64   // x·x truncated, or nil
	vals  [][]uint64 // every piece's value, per element
	diffs []uint64   // v_i − v_base for every piece i but the base
	d     []uint64   // the opened diffs − a
}

// side is the sideOpen of the carry rounds: first the truncation of x²
// (with one), the next the truncation of the pieces that need one, then,
// in round SignLevels−1, d = diffs − a, opened in the last.
func (s *pieceCarry) side(l int, prev [][]uint64) ([]vec, error) {
	p, mt := s.p, s.mt
	switch {
	case l == 0 && mt.sq != nil:
		return []vec{arith(p.truncMask(mt.sq.Trunc(), s.z2))}, nil
	case l == 1 && mt.sq != nil:
		s.x2 = p.truncFinish(mt.sq.Trunc(), prev[0])
	}
	truncRound := 0
	if mt.sq != nil {
		truncRound = 1
	}
	if mt.vals != nil && l == truncRound {
		pre, err := p.pieceProducts(s.pw, s.x, s.x2, s.shape)
		if err != nil {
			return nil, err
		}
		return []vec{arith(p.truncMask(mt.vals.Trunc(), pre))}, nil
	}
	if mt.vals != nil && l == truncRound+1 {
		p.pieceValues(s.pw, s.vals, p.truncFinish(mt.vals.Trunc(), prev[0]), len(s.x))
	}
	if l == dealer.SignLevels-1 {
		if err := p.exactValues(s.pw, s.vals, s.x, s.shape); err != nil {
			return nil, err
		}
		s.diffs = pieceDiffs(s.vals, s.base, len(s.pw.Thresholds), len(s.x))
		return []vec{arith(subFrom(s.diffs, mt.cmp.A))}, nil
	}
	if l == dealer.SignLevels {
		s.d = prev[0]
	}
	return nil, nil
}

// pieceDiffs is v_i − v_base for every piece i but the base (J of them,
// n elements each), in the order of the pieces.
func pieceDiffs(vals [][]uint64, base, J, n int) []uint64 {
	diffs := make([]uint64, 0, J*n)
	for i := range vals {
		if i == base {
			continue
		}
		for e := range n {
			diffs = append(diffs, vals[i][e]-vals[base][e])
		}
	}
	return diffs
}

// pieceIndicators is, for every piece but the base (in the order of
// pieceDiffs), its XOR-shared indicator from msb_j = NOT b_j: NOT b_0 for
// the first piece, b_{J−1} for the last, b_{i−1} XOR b_i between.
func (p *party) pieceIndicators(pw *plan.Piecewise, msb []uint64, base, n int) []uint64 {
	J := len(pw.Thresholds)
	ind := make([]uint64, 0, J*n)
	for i := range pw.Pieces {
		if i == base {
			continue
		}
		for e := range n {
			var b uint64
			switch {
			case i == 0: // NOT b_0 = msb_0
				b = msb[e]
			case i == J: // b_{J-1}
				b = msb[(J-1)*n+e]
				if p.lead() {
					b ^= 1
				}
			default: // b_{i-1} XOR b_i = msb_{i-1} XOR msb_i
				b = msb[(i-1)*n+e] ^ msb[i*n+e]
			}
			ind = append(ind, b&1)
		}
	}
	return ind
}

// affine is Pre's w = α·x + β with 2f fractional bits (pending).
func (p *party) affine(pre *[2]float64, x []uint64) ([]uint64, error) {
	a, err := p.enc.EncodeValue(pre[0])
	if err != nil {
		return nil, err
	}
	b, err := p.enc.EncodeValue(pre[1])
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(x))
	for i, v := range x {
		out[i] = v * a
		if p.lead() {
			out[i] += b << p.enc.Frac
		}
	}
	return out, nil
}

// pieceProducts is, for every piece that needs a truncation (in order),
// enc(c2)·u² + enc(c1)·u + enc(c0)·2^f with u = x − M: the piece's value
// with 2f fractional bits.
func (p *party) pieceProducts(pw *plan.Piecewise, x, x2 []uint64, shape []int) ([]uint64, error) {
	n := len(x)
	var out []uint64
	for _, pc := range pw.Pieces {
		if pc.Exact() {
			continue
		}
		c0, err := p.enc.EncodeValue(pc.C[0])
		if err != nil {
			return nil, err
		}
		c2, err := p.enc.EncodeValue(pc.C[2])
		if err != nil {
			return nil, err
		}
		c1, err := p.coefficients(pc, shape, false)
		if err != nil {
			return nil, err
		}
		m, err := p.enc.EncodeValue(pc.M)
		if err != nil {
			return nil, err
		}
		m2, err := p.enc.EncodeValue(pc.M * pc.M)
		if err != nil {
			return nil, err
		}
		twoM := uint64(int64(2 * pc.M))
		for i := range n {
			u := x[i]
			if p.lead() {
				u -= m
			}
			v := c1[i%len(c1)] * u
			if pc.C[2] != 0 {
				u2 := x2[i] - twoM*x[i]
				if p.lead() {
					u2 += m2
				}
				v += c2 * u2
			}
			if p.lead() {
				v += c0 << p.enc.Frac
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// pieceValues stores the truncated values of the pieces that need one.
func (p *party) pieceValues(pw *plan.Piecewise, vals [][]uint64, t []uint64, n int) {
	k := 0
	for i, pc := range pw.Pieces {
		if pc.Exact() {
			continue
		}
		vals[i] = t[k*n : (k+1)*n]
		k++
	}
}

// exactValues computes the exact pieces: c1·(x − M) + c0 with an integer
// c1 (per element with slopes).
func (p *party) exactValues(pw *plan.Piecewise, vals [][]uint64, x []uint64, shape []int) error {
	for i, pc := range pw.Pieces {
		if !pc.Exact() {
			continue
		}
		c0, err := p.enc.EncodeValue(pc.C[0])
		if err != nil {
			return err
		}
		m, err := p.enc.EncodeValue(pc.M)
		if err != nil {
			return err
		}
		c1, err := p.coefficients(pc, shape, true)
		if err != nil {
			return err
		}
		v := make([]uint64, len(x))
		for e, xe := range x {
			k := c1[e%len(c1)]
			v[e] = k * xe
			if p.lead() {
				v[e] += c0 - k*m
			}
		}
		vals[i] = v
	}
	return nil
}

// coefficients is a piece's c1, encoded (or as an integer when exact), one
// value or one per element (slopes broadcast against the input).
func (p *party) coefficients(pc plan.Poly, shape []int, exact bool) ([]uint64, error) {
	enc := func(v float64) (uint64, error) {
		if exact {
			return uint64(int64(math.Round(v))), nil
		}
		return p.enc.EncodeValue(v)
	}
	if pc.Slope == nil {
		v, err := enc(pc.C[1])
		return []uint64{v}, err
	}
	st, err := tensor.From(pc.Slope.Shape, pc.Slope.Data)
	if err != nil {
		return nil, err
	}
	full, err := tensor.Broadcast(st, shape)
	if err != nil {
		return nil, fmt.Errorf("slopes: %w", err)
	}
	out := make([]uint64, len(full.Data))
	for i, s := range full.Data {
		if out[i], err = enc(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}
