package engine

import (
	"slices"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// bilinear computes shares of f(x, y) for the bilinear map f of req (matrix
// product, convolution or broadcast product), with a triple (A, B, C = f(A, B)):
//
//  1. open E = x - A and F = y - B (one round, both at once); with weight
//     masks (req.FixedB) B is the weight's long-term mask and F = W - B was
//     opened once at setup, so only E is opened; with a left weight
//     (req.FixedA) A is its mask, E = W - A is already open and only F is
//     opened;
//  2. z = C + f(E, B + F) + f(A, F), the f(E, F) term (inside B + F) being
//     added by party 0 only; since f is bilinear,
//     f(E + A, F + B) = f(E, F) + f(E, B) + f(A, F) + f(A, B) = f(x, y).
//     With a fixed A it is computed as C + f(E, B) + f(A + E, F), E added
//     by party 0, f(E, B) precomputed offline.
//
// E and F are uniform (A and B are), so the round reveals nothing. The
// result carries 2f fractional bits: callers truncate it.
func (p *party) bilinear(req dealer.Request, x, y *tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	m, err := p.next(req)
	if err != nil {
		return nil, err
	}
	t := m.Triple()
	if req.FixedA != "" {
		return p.bilinearFixedA(req, t, x, y)
	}
	a, b, c := t.A, t.B, t.C
	e := make([]uint64, len(x.Data))
	for i, v := range x.Data {
		e[i] = v - a[i]
	}
	var E, F *tensor.Dense[uint64]
	if req.FixedB != "" {
		// weight masks: B is the long-term mask, F = W - B is already open
		mb, mf := p.masks.B[req.FixedB], p.masks.F[req.FixedB]
		if mb == nil || mf == nil || len(mb.Data) != len(y.Data) || len(mf.Data) != len(y.Data) {
			return nil, p.failf("no opened mask for weight %q", req.FixedB)
		}
		b, F = mb.Data, &tensor.Dense[uint64]{Shape: y.Shape, Data: mf.Data}
		op, err := p.open(arith(e))
		if err != nil {
			return nil, err
		}
		E = &tensor.Dense[uint64]{Shape: x.Shape, Data: op[0]}
	} else {
		f := make([]uint64, len(y.Data))
		for i, v := range y.Data {
			f[i] = v - b[i]
		}
		op, err := p.open(arith(e), arith(f))
		if err != nil {
			return nil, err
		}
		E = &tensor.Dense[uint64]{Shape: x.Shape, Data: op[0]}
		F = &tensor.Dense[uint64]{Shape: y.Shape, Data: op[1]}
	}
	bf := make([]uint64, len(b))
	copy(bf, b)
	if p.lead() {
		for i, v := range F.Data {
			bf[i] += v
		}
	}
	t1, err := req.Bilinear(E, &tensor.Dense[uint64]{Shape: y.Shape, Data: bf})
	if err != nil {
		return nil, p.fail(-1, err)
	}
	af := t.AF // f(A, F), precomputed offline with weight masks
	if af == nil {
		t2, err := req.Bilinear(&tensor.Dense[uint64]{Shape: x.Shape, Data: a}, F)
		if err != nil {
			return nil, p.fail(-1, err)
		}
		af = t2.Data
	}
	for i := range t1.Data {
		t1.Data[i] += af[i] + c[i]
	}
	return t1, nil
}

// bilinearFixedA is bilinear with a left weight's long-term mask as A: E =
// W - A was opened at setup, only F = y - B is opened, and
// z = C + f(E, B) + f(A + E, F) with E added by party 0.
func (p *party) bilinearFixedA(req dealer.Request, t dealer.Triple, x, y *tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	ma, me := p.masks.B[req.FixedA], p.masks.F[req.FixedA]
	if ma == nil || me == nil || len(ma.Data) != len(x.Data) || len(me.Data) != len(x.Data) {
		return nil, p.failf("no opened mask for weight %q", req.FixedA)
	}
	f := make([]uint64, len(y.Data))
	for i, v := range y.Data {
		f[i] = v - t.B[i]
	}
	op, err := p.open(arith(f))
	if err != nil {
		return nil, err
	}
	F := &tensor.Dense[uint64]{Shape: y.Shape, Data: op[0]}
	E := &tensor.Dense[uint64]{Shape: x.Shape, Data: me.Data}
	ae := slices.Clone(ma.Data)
	if p.lead() {
		for i, v := range me.Data {
			ae[i] += v
		}
	}
	t1, err := req.Bilinear(&tensor.Dense[uint64]{Shape: x.Shape, Data: ae}, F)
	if err != nil {
		return nil, p.fail(-1, err)
	}
	eb := t.EB // f(E, B), precomputed offline
	if eb == nil {
		t2, err := req.Bilinear(E, &tensor.Dense[uint64]{Shape: y.Shape, Data: t.B})
		if err != nil {
			return nil, p.fail(-1, err)
		}
		eb = t2.Data
	}
	for i := range t1.Data {
		t1.Data[i] += eb[i] + t.C[i]
	}
	return t1, nil
}

// trunc divides shared fixed-point values by 2^f (f = the encoding's
// fractional bits) in one round, for any number of parties, with material
// r (uniform), r >> f and msb(r):
//
//  1. X = x + 2^62 (added by party 0) lies in [0, 2^63) when |x| < 2^62;
//  2. open c = X + r mod 2^64 (uniform, as r is);
//  3. X = c - r + 2^64*w with w = msb(r) AND NOT msb(c) (X < 2^63 makes the
//     wrap-around w exactly this), linear in the shared msb(r);
//  4. with c = c1*2^f + c0 and r = r1*2^f + r0,
//     X >> f = c1 - r1 + 2^(64-f)*w - [c0 < r0], so
//     (c >> f) - (r >> f) + 2^(64-f)*w - 2^(62-f) = (x >> f) + [c0 < r0].
//
// Error bound: for |x| < 2^62 the result is floor(x / 2^f) or one more, so
// it lies in (x/2^f - 1, x/2^f + 1): less than one unit in the last place
// from the exact quotient. Outside that range it is wrong: keep every
// product below 2^(62-2f) in real terms (2^30 with f = 16).
func (p *party) trunc(x []uint64) ([]uint64, error) {
	m, err := p.next(dealer.Request{Kind: dealer.KindTrunc, N: len(x)})
	if err != nil {
		return nil, err
	}
	tp := m.Trunc()
	op, err := p.open(arith(p.truncMask(tp, x)))
	if err != nil {
		return nil, err
	}
	return p.truncFinish(tp, op[0]), nil
}

// truncMask is step 1-2 of trunc: the shares of c = x + 2^62 + r to open.
func (p *party) truncMask(tp dealer.TruncPair, x []uint64) []uint64 {
	r := tp.R
	masked := make([]uint64, len(x))
	for i, v := range x {
		masked[i] = v + r[i]
		if p.lead() {
			masked[i] += 1 << 62
		}
	}
	return masked
}

// truncFinish is step 3-4 of trunc, from the opened c.
func (p *party) truncFinish(tp dealer.TruncPair, c []uint64) []uint64 {
	rs, rm := tp.Shift, tp.MSB
	f := p.enc.Frac
	out := make([]uint64, len(c))
	var wrapScale uint64
	if f > 0 {
		wrapScale = 1 << (64 - f)
	}
	for i, ci := range c {
		v := -rs[i]
		if ci>>63 == 0 {
			v += rm[i] * wrapScale
		}
		if p.lead() {
			v += ci>>f - 1<<(62-f)
		}
		out[i] = v
	}
	return out
}
