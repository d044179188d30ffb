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
	var af []uint64
	if len(m.Parts) > dealer.BilinearAF {
		af = m.Parts[dealer.BilinearAF] // f(A, F), precomputed offline
	} else {
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
	op, err := p.open(arith(p.truncMask(m, x)))
	if err != nil {
		return nil, err
	}
	return p.truncFinish(m, op[0]), nil
}

// truncMask is step 1-2 of trunc: the shares of c = x + 2^62 + r to open.
func (p *party) truncMask(m *dealer.Material, x []uint64) []uint64 {
	r := m.Parts[dealer.TruncR]
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
func (p *party) truncFinish(m *dealer.Material, c []uint64) []uint64 {
	rs, rm := m.Parts[dealer.TruncShift], m.Parts[dealer.TruncMSB]
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

// relu computes shares of max(x, 0) for every element of x at once, in
// 2 + SignLevels rounds whatever len(x) (5 rounds):
//
//  1. open c = x + r and d = x - a (one round; r, a uniform);
//  2. x = c - r = c + NOT(r) + 1; with y = NOT(r) XOR-shared (the dealer
//     XOR-shares r's bits), find the carry into bit 63 of c + y + 1 with a
//     radix-4 carry tree on the bits of all elements packed in words, one
//     round per level (3 levels, see msb);
//  3. b = msb(x) = bit 63 of (c XOR y) XOR the carry, XOR-shared;
//  4. open e = b XOR rho (one round, bits packed 64 to a word), rho a
//     random bit the dealer shares both as a bit and as an integer;
//  5. x*rho = a*rho + d*rho from the pair (a, a*rho), and
//     relu(x) = x - x*b = x - x*rho if e = 0, x*rho if e = 1
//     (b = rho or 1 - rho).
//
// It is exact: no truncation, no error. msb is the sign for |x| < 2^63.
// Traffic per element and peer: 16 bytes in step 1, 147 bits (18.4 bytes)
// in step 2 (7 masked variables per quad, 16 + 4 + 1 quads), 1/8 byte in
// step 4: about 35 bytes.
func (p *party) relu(x []uint64) ([]uint64, error) {
	m, err := p.next(dealer.Request{Kind: dealer.KindSign, N: len(x)})
	if err != nil {
		return nil, err
	}
	r, a := m.Parts[dealer.SignR], m.Parts[dealer.SignA]
	cm, dm := make([]uint64, len(x)), make([]uint64, len(x))
	for i, v := range x {
		cm[i] = v + r[i]
		dm[i] = v - a[i]
	}
	op, err := p.open(arith(cm), arith(dm))
	if err != nil {
		return nil, err
	}
	b, _, err := p.msb(m, op[0], nil)
	if err != nil {
		return nil, err
	}
	return p.reluSelect(m, x, op[1], b)
}

// truncRelu truncates a product z and applies ReLU to the result, in the
// rounds of a ReLU alone (8): the first round opens both the truncation's
// c_t = z + 2^62 + r_t and the sign test's c = z + r (msb(z) decides
// relu(trunc(z)): trunc(z) >= 0 iff z >= 0, up to values that truncate to
// -1 ulp or 0, where both give 0); d = trunc(z) - a is opened with the
// first AND level. It returns trunc(z) (for other consumers) and its ReLU.
func (p *party) truncRelu(z []uint64) (t, y []uint64, err error) {
	mt, err := p.next(dealer.Request{Kind: dealer.KindTrunc, N: len(z)})
	if err != nil {
		return nil, nil, err
	}
	ms, err := p.next(dealer.Request{Kind: dealer.KindSign, N: len(z)})
	if err != nil {
		return nil, nil, err
	}
	r := ms.Parts[dealer.SignR]
	cm := make([]uint64, len(z))
	for i, v := range z {
		cm[i] = v + r[i]
	}
	op, err := p.open(arith(p.truncMask(mt, z)), arith(cm))
	if err != nil {
		return nil, nil, err
	}
	t = p.truncFinish(mt, op[0])
	a := ms.Parts[dealer.SignA]
	dm := make([]uint64, len(t))
	for i, v := range t {
		dm[i] = v - a[i]
	}
	b, d, err := p.msb(ms, op[1], dm)
	if err != nil {
		return nil, nil, err
	}
	y, err = p.reluSelect(ms, t, d, b)
	return t, y, err
}

// msb is step 2-3 of relu: from the opened c = x + r it returns XOR shares
// of msb(x), one bit per element (bit 0 of each word). extra, when not nil,
// is opened (additively) in the first carry round and returned opened.
//
// The carry into bit 63 of c + NOT(r) + 1 comes from a radix-4 tree: per
// bit, generate g = c AND y (bit 0: c OR y, the carry-in) and propagate
// p = c XOR y with y = NOT(r) XOR-shared, bit 63 set to (g, p) = (0, 1) so
// that the word's carry-out is the carry into bit 63; each level merges
// four adjacent groups (64 -> 16 -> 4 -> 1) in one round (see
// dealer.QuadMonomials).
func (p *party) msb(m *dealer.Material, c []uint64, extra []uint64) (bits, opened []uint64, err error) {
	n := len(c)
	rbits := m.Parts[dealer.SignBits]
	lead := p.lead()
	g, pr := make([]uint64, n), make([]uint64, n)
	top := make([]uint64, n) // bit 63 of c XOR y
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
		pi := y
		if lead {
			pi ^= ci
		}
		top[i] = pi >> 63
		// bit 63: generate 0, propagate 1 (a public 1: party 0 holds it)
		g[i] = gi &^ (1 << 63)
		pi &^= 1 << 63
		if lead {
			pi |= 1 << 63
		}
		pr[i] = pi
	}
	var subIndex [1 << dealer.QuadVars]int
	for j, s := range dealer.QuadSubsets {
		subIndex[s] = j
	}
	vars := make([][]uint64, dealer.QuadVars)
	g3 := make([]uint64, n)
	tmp := make([]uint64, n)
	for l := range dealer.SignLevels {
		q := dealer.SignQuads(l)
		words := dealer.SignLevelWords(l, n)
		base := dealer.SignLevel(l)
		// variables 0..2: g0, g1, g2; 3..6: p0..p3 (group 4j+k of an element
		// is bit k of quad j)
		vs := make([]vec, 0, dealer.QuadVars+1)
		for x := range dealer.QuadVars {
			src, shift := g, x
			if x >= 3 {
				src, shift = pr, x-3
			}
			for i := range n {
				tmp[i] = compact4(src[i] >> shift)
			}
			v := make([]uint64, words)
			packBits(v, tmp, q)
			mask := m.Parts[base+x]
			for w := range v {
				v[w] ^= mask[w]
			}
			vs = append(vs, xorv(v))
		}
		for i := range n {
			g3[i] = compact4(g[i] >> 3)
		}
		if l == 0 && extra != nil {
			vs = append(vs, arith(extra))
		}
		op, err := p.open(vs...)
		if err != nil {
			return nil, nil, err
		}
		if l == 0 && extra != nil {
			opened = op[dealer.QuadVars]
		}
		for x := range dealer.QuadVars {
			vars[x] = op[x] // eps_x = x XOR u_x, public
		}
		var mono [4][]uint64
		for k, mon := range dealer.QuadMonomials {
			acc := make([]uint64, words)
			for w := range acc {
				var a uint64
				// prod over mon of (eps ^ u) = XOR over S ⊆ mon of
				// prod_{mon \ S} eps · prod_S u
				for s := mon; ; s = (s - 1) & mon {
					t := ^uint64(0)
					for x := range dealer.QuadVars {
						if (mon&^s)&(1<<x) != 0 {
							t &= vars[x][w]
						}
					}
					switch {
					case s == 0:
						if lead {
							a ^= t
						}
					case s&(s-1) == 0: // one variable: its mask share
						x := 0
						for s>>x != 1 {
							x++
						}
						a ^= t & m.Parts[base+x][w]
					default:
						a ^= t & m.Parts[base+dealer.QuadVars+subIndex[s]][w]
					}
					if s == 0 {
						break
					}
				}
				acc[w] = a
			}
			mono[k] = acc
		}
		for w := range mono[0] {
			mono[0][w] ^= mono[1][w] ^ mono[2][w]
		}
		unpackBits(g, mono[0], q)
		for i := range n {
			g[i] ^= g3[i]
		}
		unpackBits(pr, mono[3], q)
	}
	for i := range n {
		g[i] = (top[i] ^ g[i]) & 1
	}
	return g, opened, nil
}

// reluSelect is step 4-5 of relu: from shares of x, the opened d = x - a
// and XOR shares of b = msb(x), it returns shares of x·(1 - b).
func (p *party) reluSelect(m *dealer.Material, x, d, b []uint64) ([]uint64, error) {
	n := len(x)
	rho := m.Parts[dealer.SignRho]
	packed := make([]uint64, len(rho))
	copy(packed, rho)
	for i := range n {
		packed[i/64] ^= (b[i] & 1) << (i % 64)
	}
	op, err := p.open(xorv(packed))
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

// maxWindows computes shares of the max of each of `size` windows of k
// values, vals laid out [k][size] (value j of window s at j*size+s), in
// 1 + SignLevels + len(dealer.MaxAndLevels(k)) + 1 rounds (7 for k = 4,
// 6 for k = 3) whatever the number of windows:
//
//  1. open c_ij = (v_i - v_j) + r_ij for every pair i < j of every window
//     and d_i = v_i - a_i for every candidate (one round);
//  2. m_ij = msb(v_i - v_j), i.e. [v_i < v_j], for all pairs at once (the
//     carry circuit of relu);
//  3. candidate i wins when v_i >= v_j for j > i and v_i > v_j for j < i
//     (ties go to the first): s_i = AND of NOT m_ij (j > i) and m_ji
//     (j < i), a tree of ANDs over the k-1 bits, one round per level;
//  4. open e_i = s_i XOR rho_i (one round) and
//     max = sum_i v_i·s_i, v_i·s_i = v_i·rho_i if e_i = 0 and
//     v_i - v_i·rho_i if e_i = 1, with v_i·rho_i = a_i·rho_i + d_i·rho_i.
//
// It is exact. Compared with a tree of pairwise maxima (a ReLU, 5 rounds,
// per level) it trades rounds for traffic: k(k-1)/2 comparisons per window
// instead of k-1.
func (p *party) maxWindows(vals []uint64, k, size int) ([]uint64, error) {
	m, err := p.next(dealer.Request{Kind: dealer.KindMax, N: size, K: k})
	if err != nil {
		return nil, err
	}
	pairs := dealer.MaxPairs(k)
	r, a := m.Parts[dealer.SignR], m.Parts[dealer.MaxRho(k)+2]
	cm := make([]uint64, 0, pairs*size)
	pairIndex := make([][]int, k) // pairIndex[i][j] = index of pair (min, max)
	for i := range k {
		pairIndex[i] = make([]int, k)
	}
	q := 0
	for i := range k {
		for j := i + 1; j < k; j++ {
			pairIndex[i][j], pairIndex[j][i] = q, q
			vi, vj := vals[i*size:(i+1)*size], vals[j*size:(j+1)*size]
			for s := range size {
				cm = append(cm, vi[s]-vj[s]+r[q*size+s])
			}
			q++
		}
	}
	dm := make([]uint64, k*size)
	for i, v := range vals {
		dm[i] = v - a[i]
	}
	op, err := p.open(arith(cm), arith(dm))
	if err != nil {
		return nil, err
	}
	d := op[1]
	lt, _, err := p.msb(m, op[0], nil) // lt[q*size+s] = [v_i < v_j] for pair q = (i, j)
	if err != nil {
		return nil, err
	}
	// literals: lits[t][i*size+s] is the t-th condition of candidate i
	lead := p.lead()
	lits := make([][]uint64, k-1)
	for t := range lits {
		lits[t] = make([]uint64, k*size)
	}
	for i := range k {
		t := 0
		for j := range k {
			if j == i {
				continue
			}
			q := pairIndex[i][j]
			dst := lits[t][i*size : (i+1)*size]
			for s := range size {
				b := lt[q*size+s] & 1
				if j > i && lead {
					b ^= 1 // NOT [v_i < v_j] = [v_i >= v_j]
				}
				// j < i: pair (j, i) gives [v_j < v_i] = [v_i > v_j] as is
				dst[s] = b
			}
			t++
		}
	}
	for l, ands := range dealer.MaxAndLevels(k) {
		u, v, uv := m.Parts[dealer.MaxAnd(l)], m.Parts[dealer.MaxAnd(l)+1], m.Parts[dealer.MaxAnd(l)+2]
		xs, ys := make([]uint64, 0, ands*k*size), make([]uint64, 0, ands*k*size)
		for t := range ands {
			xs = append(xs, lits[2*t]...)
			ys = append(ys, lits[2*t+1]...)
		}
		X, Y := make([]uint64, len(uv)), make([]uint64, len(uv))
		packBits(X, xs, 1)
		packBits(Y, ys, 1)
		z, err := p.and(X, Y, u, v, uv)
		if err != nil {
			return nil, err
		}
		zs := make([]uint64, len(xs))
		unpackBits(zs, z, 1)
		next := make([][]uint64, 0, len(lits)-ands)
		for t := range ands {
			next = append(next, zs[t*k*size:(t+1)*k*size])
		}
		if len(lits)%2 == 1 {
			next = append(next, lits[len(lits)-1])
		}
		lits = next
	}
	win := lits[0] // XOR shares of s_i per candidate
	rhoAt := dealer.MaxRho(k)
	packed := make([]uint64, len(m.Parts[rhoAt]))
	copy(packed, m.Parts[rhoAt])
	for i, b := range win {
		packed[i/64] ^= (b & 1) << (i % 64)
	}
	op, err = p.open(xorv(packed))
	if err != nil {
		return nil, err
	}
	e := op[0]
	rhoA, arho := m.Parts[rhoAt+1], m.Parts[rhoAt+3]
	out := make([]uint64, size)
	for i, v := range vals {
		vrho := arho[i] + d[i]*rhoA[i]
		if (e[i/64]>>(i%64))&1 == 0 {
			out[i%size] += vrho
		} else {
			out[i%size] += v - vrho
		}
	}
	return out, nil
}

// and computes XOR shares of X AND Y (packed bit vectors) with AND triples
// (u, v, u AND v) in one round: open X^u and Y^v, then
// X AND Y = uv ^ (E AND v) ^ (D AND u) ^ (E AND D), the last term by party 0.
func (p *party) and(X, Y, u, v, uv []uint64) ([]uint64, error) {
	eps, del := make([]uint64, len(X)), make([]uint64, len(Y))
	for i := range X {
		eps[i] = X[i] ^ u[i]
		del[i] = Y[i] ^ v[i]
	}
	op, err := p.open(xorv(eps), xorv(del))
	if err != nil {
		return nil, err
	}
	E, D := op[0], op[1]
	z := make([]uint64, len(uv))
	for i := range z {
		z[i] = uv[i] ^ (E[i] & v[i]) ^ (D[i] & u[i])
		if p.lead() {
			z[i] ^= E[i] & D[i]
		}
	}
	return z, nil
}

// compact4 gathers the bits of x at positions 0, 4, ..., 60 into its low
// 16 bits. It is linear over GF(2), so it applies to XOR shares.
func compact4(x uint64) uint64 {
	x &= 0x1111111111111111
	x = (x | x>>3) & 0x0303030303030303
	x = (x | x>>6) & 0x000f000f000f000f
	x = (x | x>>12) & 0x000000ff000000ff
	x = (x | x>>24) & 0x000000000000ffff
	return x
}

// packBits writes the low w bits of every vals[i] at bit offset i*w of dst
// (w divides 64, so no value straddles two words).
func packBits(dst []uint64, vals []uint64, w int) {
	mask := uint64(1)<<w - 1
	if w == 64 {
		mask = ^uint64(0)
	}
	clear(dst)
	for i, v := range vals {
		off := i * w
		dst[off/64] |= (v & mask) << (off % 64)
	}
}

// unpackBits is the inverse of packBits: vals[i] = the w bits at offset i*w.
func unpackBits(vals []uint64, src []uint64, w int) {
	mask := uint64(1)<<w - 1
	if w == 64 {
		mask = ^uint64(0)
	}
	for i := range vals {
		off := i * w
		vals[i] = (src[off/64] >> (off % 64)) & mask
	}
}
