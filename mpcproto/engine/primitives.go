package engine

import (
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// bilinear computes shares of f(x, y) for the bilinear map f of req (matrix
// product, convolution or broadcast product), with a triple (A, B, C = f(A, B)):
//
//  1. open E = x - A and F = y - B (one round, both at once); with weight
//     masks (req.FixedB) B is the weight's long-term mask and F = W - B was
//     opened once at setup, so only E is opened;
//  2. z = C + f(E, B + F) + f(A, F), the f(E, F) term (inside B + F) being
//     added by party 0 only; since f is bilinear,
//     f(E + A, F + B) = f(E, F) + f(E, B) + f(A, F) + f(A, B) = f(x, y).
//
// E and F are uniform (A and B are), so the round reveals nothing. The
// result carries 2f fractional bits: callers truncate it.
func (p *party) bilinear(req dealer.Request, x, y *tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	m, err := p.next(req)
	if err != nil {
		return nil, err
	}
	a, b, c := m.Parts[dealer.BilinearA], m.Parts[dealer.BilinearB], m.Parts[dealer.BilinearC]
	e := make([]uint64, len(x.Data))
	for i, v := range x.Data {
		e[i] = v - a[i]
	}
	var E, F *tensor.Dense[uint64]
	if req.FixedB != "" {
		// weight masks: B is the long-term mask, F = W - B is already open
		mb, mf := p.masks.B[req.FixedB], p.masks.F[req.FixedB]
		if mb == nil || mf == nil || len(mb.Data) != len(y.Data) {
			return nil, p.failf("no opened mask for weight %q", req.FixedB)
		}
		b, F = mb.Data, mf
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
	t2, err := req.Bilinear(&tensor.Dense[uint64]{Shape: x.Shape, Data: a}, F)
	if err != nil {
		return nil, p.fail(-1, err)
	}
	for i := range t1.Data {
		t1.Data[i] += t2.Data[i] + c[i]
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
	r, rs, rm := m.Parts[dealer.TruncR], m.Parts[dealer.TruncShift], m.Parts[dealer.TruncMSB]
	f := p.enc.Frac
	masked := make([]uint64, len(x))
	for i, v := range x {
		masked[i] = v + r[i]
		if p.lead() {
			masked[i] += 1 << 62
		}
	}
	op, err := p.open(arith(masked))
	if err != nil {
		return nil, err
	}
	c := op[0]
	out := make([]uint64, len(x))
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
	return out, nil
}

// relu computes shares of max(x, 0) for every element of x at once, in
// 2 + SignLevels rounds whatever len(x) (8 rounds):
//
//  1. open c = x + r and d = x - a (one round; r, a uniform);
//  2. x = c - r = c + NOT(r) + 1; with y = NOT(r) XOR-shared (the dealer
//     XOR-shares r's bits), compute the carry into bit 63 of c + y + 1 with
//     a Kogge-Stone prefix over the words: generate G = c AND y (bit 0:
//     c OR y, the carry-in), propagate P = c XOR y, then for s = 1, 2, 4,
//     8, 16, 32: G ^= P AND (G << s), P &= P << s, each level one round of
//     AND triples on all words at once;
//  3. b = msb(x) = bit 63 of (c XOR y) XOR bit 62 of G, XOR-shared;
//  4. open e = b XOR rho (one round, bits packed 64 to a word), rho a
//     random bit the dealer shares both as a bit and as an integer;
//  5. x*rho = a*rho + d*rho from the pair (a, a*rho), and
//     relu(x) = x - x*b = x - x*rho if e = 0, x*rho if e = 1
//     (b = rho or 1 - rho).
//
// It is exact: no truncation, no error. msb is the sign for |x| < 2^63.
func (p *party) relu(x []uint64) ([]uint64, error) {
	n := len(x)
	m, err := p.next(dealer.Request{Kind: dealer.KindSign, N: n})
	if err != nil {
		return nil, err
	}
	r, rbits, a := m.Parts[dealer.SignR], m.Parts[dealer.SignBits], m.Parts[dealer.SignA]
	cm, dm := make([]uint64, n), make([]uint64, n)
	for i, v := range x {
		cm[i] = v + r[i]
		dm[i] = v - a[i]
	}
	op, err := p.open(arith(cm), arith(dm))
	if err != nil {
		return nil, err
	}
	c, d := op[0], op[1]
	lead := p.lead()
	g, pr := make([]uint64, n), make([]uint64, n)
	for i, ci := range c {
		y := rbits[i]
		if lead {
			y = ^y
		}
		gi := (ci & y) &^ 1
		if ci&1 == 1 {
			if lead {
				gi |= 1
			}
		} else {
			gi |= y & 1
		}
		g[i] = gi
		pi := y
		if lead {
			pi ^= ci
		}
		pr[i] = pi
	}
	top := make([]uint64, n) // bit 63 of c XOR y
	for i, v := range pr {
		top[i] = v >> 63
	}
	for l := range dealer.SignLevels {
		s := uint(1) << l
		last := l == dealer.SignLevels-1
		u, v, uv := m.Parts[dealer.SignAnd(l)], m.Parts[dealer.SignAnd(l)+1], m.Parts[dealer.SignAnd(l)+2]
		w := len(uv)
		eps, del := make([]uint64, w), make([]uint64, w)
		for i := range n {
			eps[i] = pr[i] ^ u[i]
			del[i] = (g[i] << s) ^ v[i]
			if !last {
				eps[n+i] = pr[i] ^ u[n+i]
				del[n+i] = (pr[i] << s) ^ v[n+i]
			}
		}
		op, err := p.open(xorv(eps), xorv(del))
		if err != nil {
			return nil, err
		}
		E, D := op[0], op[1]
		for i := range w {
			z := uv[i] ^ (E[i] & v[i]) ^ (D[i] & u[i])
			if lead {
				z ^= E[i] & D[i]
			}
			if i < n {
				g[i] ^= z
			} else {
				pr[i-n] = z
			}
		}
	}
	rho := m.Parts[dealer.SignRho]
	packed := make([]uint64, len(rho))
	copy(packed, rho)
	for i := range n {
		b := (top[i] ^ g[i]>>62) & 1
		packed[i/64] ^= b << (i % 64)
	}
	op, err = p.open(xorv(packed))
	if err != nil {
		return nil, err
	}
	e := op[0]
	rhoA, arho := m.Parts[dealer.SignRhoArith], m.Parts[dealer.SignARho]
	out := make([]uint64, n)
	for i := range n {
		xrho := arho[i] + d[i]*rhoA[i]
		if (e[i/64]>>(i%64))&1 == 0 {
			out[i] = x[i] - xrho
		} else {
			out[i] = xrho
		}
	}
	return out, nil
}
