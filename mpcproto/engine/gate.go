package engine

import (
	"runtime"
	"sync"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fss"
)

// Comparisons of two parties by function secret sharing (dealer.UsesGates):
// the dealer's sign gates (dealer/gate.go, package fss) replace the carry
// circuit, and a ReLU costs the one round that opens its masked input.

// reluGate computes shares of max(x, 0) for two parties in one round:
//
//  1. open x^ = x + r (r uniform, the gate's mask);
//  2. evaluate the gate at x^ (gateEval): shares of d = [x >= 0] and of
//     d·r, r being the gate's multiplicand;
//  3. relu(x) = x·d = x^·d - d·r (x^ public).
//
// It is exact for every x of the ring (k = 64). Traffic: 8 bytes per
// element and peer; the dealer's key is 2,048 bytes per element and
// party (fss.KeyWords(63, 2) words and a 2-word root).
func (p *party) reluGate(x []uint64) ([]uint64, error) {
	m, err := p.next(dealer.Request{Kind: dealer.KindReluGate, N: len(x)})
	if err != nil {
		return nil, err
	}
	g := m.Gate()
	op, err := p.open(arith(addTo(x, g.R)))
	if err != nil {
		return nil, err
	}
	xhat := op[0]
	du, err := p.gateEval(g, xhat, func(i int, u []uint64) { u[1] = g.R[i] })
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(x))
	for i, v := range xhat {
		out[i] = v*du[2*i] - du[2*i+1]
	}
	return out, nil
}

// truncReluGate truncates a product z and applies ReLU to the result, for
// two parties in one round (the round of the truncation alone):
//
//  1. open c = z + 2^62 + r (trunc's opening, r the gate's mask);
//  2. t = trunc(z) = L - r1 + [c < 2^63]·2^(64-f)·msb(r), with
//     L = (c >> f) - 2^(62-f) public and r1 = r >> f (truncFinish);
//  3. the gate on k = 63 bits at x^ = c - 2^62 = z + r gives shares of
//     d = [z >= 0], d·r1 and d·msb(r) (gateEval), and
//     relu(t) = t·d = L·d - d·r1 + [c < 2^63]·2^(64-f)·d·msb(r).
//
// d is the sign of z, which decides relu(trunc(z)) up to values that
// truncate to -1 ulp or 0 (as in truncRelu). It returns t and relu(t).
func (p *party) truncReluGate(z []uint64) (t, y []uint64, err error) {
	m, err := p.next(dealer.Request{Kind: dealer.KindTruncReluGate, N: len(z)})
	if err != nil {
		return nil, nil, err
	}
	g := m.Gate()
	op, err := p.open(arith(p.truncMask(g.Trunc, z)))
	if err != nil {
		return nil, nil, err
	}
	c := op[0]
	t = p.truncFinish(g.Trunc, c)
	xhat := make([]uint64, len(c))
	for i, v := range c {
		xhat[i] = v - 1<<62
	}
	du, err := p.gateEval(g, xhat, func(i int, u []uint64) { u[1], u[2] = g.Trunc.Shift[i], g.Trunc.MSB[i] })
	if err != nil {
		return nil, nil, err
	}
	f := p.enc.Frac
	var wrapScale uint64
	if f > 0 {
		wrapScale = 1 << (64 - f)
	}
	y = make([]uint64, len(z))
	for i, ci := range c {
		d, dr1, dmsb := du[3*i], du[3*i+1], du[3*i+2]
		v := (ci>>f-1<<(62-f))*d - dr1
		if ci>>63 == 0 {
			v += wrapScale * dmsb
		}
		y[i] = v
	}
	return t, y, nil
}

// gateEval evaluates the sign gates of g at the opened x^ (steps 1-4 of
// fss.SignInput's comment): it returns, per element, the shares of d·u_j
// for the gate's Width multiplicands, u_0 = 1 and u_1.. set by mult from
// the party's shares. The elements are split among the cores.
func (p *party) gateEval(g dealer.Gate, xhat []uint64, mult func(i int, u []uint64)) ([]uint64, error) {
	n, w := len(xhat), g.Width
	out := make([]uint64, n*w)
	y := fss.Layout{Bits: g.Bits - 1, Width: w, Keys: n}
	chunks := min(runtime.GOMAXPROCS(0), 1+n/64)
	errs := make([]error, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*n/chunks, (c+1)*n/chunks
		wg.Add(1)
		go func() {
			defer wg.Done()
			zs, zh := make([]uint64, hi-lo), make([]uint64, hi-lo)
			roots := make([]fss.Seed, hi-lo)
			for i := lo; i < hi; i++ {
				zs[i-lo], zh[i-lo] = fss.SignInput(xhat[i], g.Bits)
				roots[i-lo] = fss.Seed{g.Roots[2*i], g.Roots[2*i+1]}
			}
			v := make([]uint64, (hi-lo)*w)
			if errs[c] = fss.EvalRange(p.self, y, g.CW, lo, roots, zs, v); errs[c] != nil {
				return
			}
			u := make([]uint64, w)
			for i := lo; i < hi; i++ {
				u[0] = 0
				if p.lead() {
					u[0] = 1
				}
				mult(i, u)
				fss.SignCombine(zh[i-lo], v[(i-lo)*w:(i-lo+1)*w], g.MU[i*w:(i+1)*w], u, out[i*w:(i+1)*w])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, p.fail(-1, err)
		}
	}
	return out, nil
}

// maxTree computes shares of the max of each of `size` windows of k
// values (vals laid out [k][size]) for two parties, with a tree of
// pairwise maxima max(a, b) = b + relu(a - b), one ReLU gate (one round)
// per level (dealer.MaxGateLevels: 2 rounds for k = 4, 4 for k = 9).
func (p *party) maxTree(vals []uint64, k, size int) ([]uint64, error) {
	cur := vals
	for k > 1 {
		pairs := k / 2
		diff := make([]uint64, pairs*size)
		for q := range pairs {
			a, b := cur[2*q*size:(2*q+1)*size], cur[(2*q+1)*size:(2*q+2)*size]
			for s := range size {
				diff[q*size+s] = a[s] - b[s]
			}
		}
		r, err := p.reluGate(diff)
		if err != nil {
			return nil, err
		}
		next := make([]uint64, 0, (k-pairs)*size)
		for q := range pairs {
			b := cur[(2*q+1)*size : (2*q+2)*size]
			for s := range size {
				next = append(next, b[s]+r[q*size+s])
			}
		}
		if k%2 == 1 {
			next = append(next, cur[(k-1)*size:k*size]...)
		}
		cur, k = next, k-pairs
	}
	return cur, nil
}
