package engine

import (
	"github.com/gridmpc/grid/mpcproto/dealer"
)

// maxWindows computes shares of the max of each of `size` windows of k
// values, vals laid out [k][size] (value j of window s at j*size+s), in
// 1 + SignLevels + (AND levels) + 1 rounds (7 for k = 4, 6 for k = 3)
// whatever the number of windows:
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
	cm := m.Comparison()
	pairs := newPairIndex(k)
	op, err := p.open(arith(pairs.masked(vals, size, cm.R)), arith(subFrom(vals, cm.A)))
	if err != nil {
		return nil, err
	}
	lt, _, err := p.msb(cm, op[0], nil) // lt[q*size+s] = [v_i < v_j] for pair q = (i, j)
	if err != nil {
		return nil, err
	}
	win, err := p.andAll(cm.Ands, pairs.literals(lt, size, p.lead()))
	if err != nil {
		return nil, err
	}
	vs, err := p.mulBit(cm, vals, op[1], win) // v_i·s_i
	if err != nil {
		return nil, err
	}
	out := make([]uint64, size)
	for i, v := range vs {
		out[i%size] += v
	}
	return out, nil
}

// pairIndex numbers the pairs of a window of k values: pair q = (i, j),
// i < j, in the order i then j, and index[i][j] = index[j][i] = q.
type pairIndex [][]int

func newPairIndex(k int) pairIndex {
	index := make(pairIndex, k)
	for i := range k {
		index[i] = make([]int, k)
	}
	q := 0
	for i := range k {
		for j := i + 1; j < k; j++ {
			index[i][j], index[j][i] = q, q
			q++
		}
	}
	return index
}

// masked is step 1 of maxWindows: the shares of c_ij = v_i - v_j + r_ij,
// laid out [pair][size].
func (pi pairIndex) masked(vals []uint64, size int, r []uint64) []uint64 {
	k := len(pi)
	out := make([]uint64, 0, k*(k-1)/2*size)
	for i := range k {
		for j := i + 1; j < k; j++ {
			q := pi[i][j]
			vi, vj := vals[i*size:(i+1)*size], vals[j*size:(j+1)*size]
			for s := range size {
				out = append(out, vi[s]-vj[s]+r[q*size+s])
			}
		}
	}
	return out
}

// literals is step 3's input: from XOR shares of lt = [v_i < v_j] per pair
// (i, j), the k-1 conditions of every candidate, lits[t][i*size+s] the
// t-th condition of candidate i in window s.
func (pi pairIndex) literals(lt []uint64, size int, lead bool) [][]uint64 {
	k := len(pi)
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
			q := pi[i][j]
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
	return lits
}

// andAll ANDs the shared bit vectors lits together, pairing the vectors
// left at each level (an odd one waits) with the level's AND triples, one
// round per level: XOR shares of the AND of all, bit 0 of each word.
func (p *party) andAll(ands []dealer.AndTriple, lits [][]uint64) ([]uint64, error) {
	for _, tr := range ands {
		h, width := len(lits)/2, len(lits[0])
		xs, ys := make([]uint64, 0, h*width), make([]uint64, 0, h*width)
		for t := range h {
			xs = append(xs, lits[2*t]...)
			ys = append(ys, lits[2*t+1]...)
		}
		X, Y := make([]uint64, len(tr.UV)), make([]uint64, len(tr.UV))
		packBits(X, xs, 1)
		packBits(Y, ys, 1)
		z, err := p.and(X, Y, tr)
		if err != nil {
			return nil, err
		}
		zs := make([]uint64, len(xs))
		unpackBits(zs, z, 1)
		next := make([][]uint64, 0, len(lits)-h)
		for t := range h {
			next = append(next, zs[t*width:(t+1)*width])
		}
		if len(lits)%2 == 1 {
			next = append(next, lits[len(lits)-1])
		}
		lits = next
	}
	return lits[0], nil
}

// and computes XOR shares of X AND Y (packed bit vectors) with AND triples
// (u, v, u AND v) in one round: open X^u and Y^v, then
// X AND Y = uv ^ (E AND v) ^ (D AND u) ^ (E AND D), the last term by party 0.
func (p *party) and(X, Y []uint64, tr dealer.AndTriple) ([]uint64, error) {
	u, v, uv := tr.U, tr.V, tr.UV
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
