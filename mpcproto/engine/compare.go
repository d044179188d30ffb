package engine

import (
	"slices"

	"github.com/gridmpc/grid/mpcproto/dealer"
)

// relu computes shares of max(x, 0) for every element of x at once; with
// two parties it takes a sign gate (reluGate, one round), else the carry
// circuit, in 2 + SignLevels rounds whatever len(x) (5 rounds):
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
	if p.gates {
		return p.reluGate(x)
	}
	m, err := p.next(dealer.Request{Kind: dealer.KindSign, N: len(x)})
	if err != nil {
		return nil, err
	}
	cm := m.Comparison()
	op, err := p.open(arith(addTo(x, cm.R)), arith(subFrom(x, cm.A)))
	if err != nil {
		return nil, err
	}
	b, _, err := p.msb(cm, op[0], nil)
	if err != nil {
		return nil, err
	}
	return p.reluSelect(cm, x, op[1], b)
}

// truncRelu truncates a product z and applies ReLU to the result, in the
// rounds of a ReLU alone (5; one with two parties' sign gates,
// truncReluGate): the first round opens both the truncation's
// c_t = z + 2^62 + r_t and the sign test's c = z + r (msb(z) decides
// relu(trunc(z)): trunc(z) >= 0 iff z >= 0, up to values that truncate to
// -1 ulp or 0, where both give 0); d = trunc(z) - a is opened with the
// first AND level. It returns trunc(z) (for other consumers) and its ReLU.
func (p *party) truncRelu(z []uint64) (t, y []uint64, err error) {
	if p.gates {
		return p.truncReluGate(z)
	}
	mt, err := p.next(dealer.Request{Kind: dealer.KindTrunc, N: len(z)})
	if err != nil {
		return nil, nil, err
	}
	ms, err := p.next(dealer.Request{Kind: dealer.KindSign, N: len(z)})
	if err != nil {
		return nil, nil, err
	}
	tp, cm := mt.Trunc(), ms.Comparison()
	op, err := p.open(arith(p.truncMask(tp, z)), arith(addTo(z, cm.R)))
	if err != nil {
		return nil, nil, err
	}
	t = p.truncFinish(tp, op[0])
	b, d, err := p.msb(cm, op[1], subFrom(t, cm.A))
	if err != nil {
		return nil, nil, err
	}
	y, err = p.reluSelect(cm, t, d, b)
	return t, y, err
}

// addTo returns x + r elementwise, subFrom x - a: the shares of a value
// masked for opening.
func addTo(x, r []uint64) []uint64 {
	out := make([]uint64, len(x))
	for i, v := range x {
		out[i] = v + r[i]
	}
	return out
}

func subFrom(x, a []uint64) []uint64 {
	out := make([]uint64, len(x))
	for i, v := range x {
		out[i] = v - a[i]
	}
	return out
}

// msb is step 2-3 of relu: from the opened c = x + r it returns XOR shares
// of msb(x), one bit per element (bit 0 of each word). extra, when not nil,
// is opened (additively) in the first carry round and returned opened.
//
// The carry into bit 63 of c + NOT(r) + 1 comes from a radix-4 tree: per
// bit, generate g = c AND y (bit 0: c OR y, the carry-in) and propagate
// p = c XOR y with y = NOT(r) XOR-shared (carryInputs); each level merges
// four adjacent groups (64 -> 16 -> 4 -> 1) in one round (carryLevel).
func (p *party) msb(cm dealer.Comparison, c []uint64, extra []uint64) (bits, opened []uint64, err error) {
	if extra == nil {
		bits, err = p.msbWith(cm, c, nil)
		return bits, nil, err
	}
	bits, err = p.msbWith(cm, c, func(l int, prev [][]uint64) ([]vec, error) {
		switch l {
		case 0:
			return []vec{arith(extra)}, nil
		case 1:
			opened = prev[0]
		}
		return nil, nil
	})
	return bits, opened, err
}

// sideOpen gives the vectors to open in carry round l (0, 1, 2), from
// what the previous carry round opened beside the carry tree (prev, nil
// in round 0); it is called once more with l = SignLevels after the last
// round, to take its openings.
type sideOpen func(l int, prev [][]uint64) ([]vec, error)

// msbWith is msb with other vectors opened in the carry rounds (side).
func (p *party) msbWith(cm dealer.Comparison, c []uint64, side sideOpen) ([]uint64, error) {
	g, pr, top := p.carryInputs(c, cm.Bits)
	var prev [][]uint64
	for l, lv := range cm.Levels {
		var ex []vec
		if side != nil {
			var err error
			if ex, err = side(l, prev); err != nil {
				return nil, err
			}
		}
		o, err := p.carryLevel(lv, g, pr, ex)
		if err != nil {
			return nil, err
		}
		prev = o
	}
	if side != nil {
		if _, err := side(dealer.SignLevels, prev); err != nil {
			return nil, err
		}
	}
	for i := range g {
		g[i] = (top[i] ^ g[i]) & 1
	}
	return g, nil
}

// carryInputs gives, per bit of c + y + 1 with y = NOT(r) XOR-shared
// (rbits holds r's bits), XOR shares of the generate bits g = c AND y (bit
// 0: c OR y, the carry-in) and the propagate bits p = c XOR y, with bit 63
// set to (g, p) = (0, 1) so that the word's carry-out is the carry into
// bit 63; top is bit 63 of c XOR y.
func (p *party) carryInputs(c, rbits []uint64) (g, pr, top []uint64) {
	n := len(c)
	lead := p.lead()
	g, pr, top = make([]uint64, n), make([]uint64, n), make([]uint64, n)
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
	return g, pr, top
}

// carryLevel is one level of the carry tree, one round: it opens the
// QuadVars variables of every quad of every element masked (x XOR u_x,
// one bit per quad, packed; group 4j+k of an element is bit k of quad j),
// and the extra vectors with them; evaluates the monomials from the
// opened values (quadMonomials); and replaces g and pr, in place, by the
// generate and propagate bits of the merged groups. It returns the extra
// vectors opened.
func (p *party) carryLevel(lv dealer.CarryLevel, g, pr []uint64, extra []vec) ([][]uint64, error) {
	n, q := len(g), lv.Quads
	tmp := make([]uint64, n)
	vs := make([]vec, 0, dealer.QuadVars+1)
	for x := range dealer.QuadVars {
		// variables 0..2: g0, g1, g2; 3..6: p0..p3
		src, shift := g, x
		if x >= 3 {
			src, shift = pr, x-3
		}
		for i := range n {
			tmp[i] = compact4(src[i] >> shift)
		}
		mask := lv.Mask(1 << x)
		v := make([]uint64, len(mask))
		packBits(v, tmp, q)
		for w := range v {
			v[w] ^= mask[w]
		}
		vs = append(vs, xorv(v))
	}
	vs = append(vs, extra...)
	op, err := p.open(vs...)
	if err != nil {
		return nil, err
	}
	opened := op[dealer.QuadVars:]
	for i := range n {
		tmp[i] = compact4(g[i] >> 3) // g3
	}
	mono := p.quadMonomials(lv, op[:dealer.QuadVars])
	for w := range mono[0] {
		mono[0][w] ^= mono[1][w] ^ mono[2][w]
	}
	unpackBits(g, mono[0], q)
	for i := range n {
		g[i] ^= tmp[i]
	}
	unpackBits(pr, mono[3], q)
	return opened, nil
}

// quadMonomials computes XOR shares of the four monomials of a quad merge
// (dealer.QuadMonomials), from the opened eps_x = x XOR u_x and the shares
// of the products of masks: the product over a monomial M of
// (eps_x XOR u_x) is the XOR over S ⊆ M of
// prod_{x in M \ S} eps_x · prod_{x in S} u_x, the term of the empty S
// being public (party 0 adds it).
func (p *party) quadMonomials(lv dealer.CarryLevel, eps [][]uint64) [4][]uint64 {
	type term struct {
		eps  []int    // the variables whose opened value is a factor
		mask []uint64 // the share of the product of the others' masks; nil for none
	}
	var out [4][]uint64
	for k, mon := range dealer.QuadMonomials {
		var terms []term
		for s := mon; ; s = (s - 1) & mon {
			if s != 0 || p.lead() {
				t := term{mask: lv.Mask(s)}
				for x := range dealer.QuadVars {
					if (mon&^s)&(1<<x) != 0 {
						t.eps = append(t.eps, x)
					}
				}
				terms = append(terms, t)
			}
			if s == 0 {
				break
			}
		}
		acc := make([]uint64, len(eps[0]))
		for w := range acc {
			var a uint64
			for _, t := range terms {
				v := ^uint64(0)
				if t.mask != nil {
					v = t.mask[w]
				}
				for _, x := range t.eps {
					v &= eps[x][w]
				}
				a ^= v
			}
			acc[w] = a
		}
		out[k] = acc
	}
	return out
}

// reluSelect is step 4-5 of relu: from shares of x, the opened d = x - a
// and XOR shares of b = msb(x), it returns shares of x·(1 - b).
func (p *party) reluSelect(cm dealer.Comparison, x, d, b []uint64) ([]uint64, error) {
	xb, err := p.mulBit(cm, x, d, b)
	if err != nil {
		return nil, err
	}
	for i, v := range x {
		xb[i] = v - xb[i]
	}
	return xb, nil
}

// mulBit multiplies shared values by shared bits in one round (the last of
// relu and of max): from shares of x, the opened d = x - a and XOR shares
// of bits b (bit 0 of each word, one per element), it opens
// e = b XOR rho (packed) and returns shares of x·b: x·rho = a·rho + d·rho
// from the dealer's pair (a, a·rho), and x·b = x·rho if e = 0,
// x - x·rho if e = 1 (b = rho or 1 - rho).
func (p *party) mulBit(cm dealer.Comparison, x, d, b []uint64) ([]uint64, error) {
	packed := slices.Clone(cm.Rho)
	for i := range x {
		packed[i/64] ^= (b[i] & 1) << (i % 64)
	}
	op, err := p.open(xorv(packed))
	if err != nil {
		return nil, err
	}
	e := op[0]
	out := make([]uint64, len(x))
	for i, v := range x {
		xrho := cm.ARho[i] + d[i]*cm.RhoArith[i]
		if (e[i/64]>>(i%64))&1 == 0 {
			out[i] = xrho
		} else {
			out[i] = v - xrho
		}
	}
	return out, nil
}
