package plan

import (
	"math"
)

// biasBound is the bound of a MatMul's or Conv's optional bias.
type biasBound struct {
	col []float64 // a weight bias: each column's magnitude
	top float64   // max of col
	at  int       // otherwise the bias value's index, -1 for no bias
}

// bias returns the bias bound of a MatMul or Conv with inputs ins.
func (c *rangeCompiler) bias(ins []int) biasBound {
	if len(ins) < 3 {
		return biasBound{at: -1}
	}
	k := c.known[ins[2]]
	if k == nil {
		return biasBound{at: ins[2]}
	}
	b := biasBound{col: make([]float64, len(k.Data)), at: -1}
	for j, x := range k.Data {
		b.col[j] = c.mag(x)
		b.top = math.Max(b.top, b.col[j])
	}
	return b
}

// column is the bias bound of output column (channel) j.
func (b biasBound) column(v []float64, j int) float64 {
	switch {
	case b.col != nil:
		return b.col[j]
	case b.at >= 0:
		return v[b.at]
	}
	return 0
}

// max is the bias bound over every column.
func (b biasBound) max(v []float64) float64 {
	if b.col != nil {
		return b.top
	}
	return b.column(v, 0)
}

// perColumn is max over columns j of l1[j]·a + bias_j, a the bound of x.
func perColumn(l1 []float64, x int, b biasBound) boundFunc {
	return func(v []float64) float64 {
		best := 0.0
		for j, l := range l1 {
			best = math.Max(best, mul(l, v[x])+b.column(v, j))
		}
		return best
	}
}

// matmulRule bounds A·B + bias: with a weight B, per output column the
// L1 norm of B's column (the largest over B's batch) times A's bound plus
// the column's bias (the exact worst case for that bound); with a weight
// A, the largest row L1 norm of A times B's bound; else k·|A|·|B|.
func (c *rangeCompiler) matmulRule(ins []int) boundFunc {
	x, w := ins[0], ins[1]
	b := c.bias(ins)
	sa, sb := c.shape[x], c.shape[w]
	k := sa[len(sa)-1]
	if kw := c.known[w]; kw != nil {
		if len(sb) == 1 { // a column: one output per row of A
			l1 := 0.0
			for _, v := range kw.Data {
				l1 += c.mag(v)
			}
			return func(v []float64) float64 { return mul(l1, v[x]) + b.max(v) }
		}
		n := sb[len(sb)-1]
		col := make([]float64, n)
		for s := 0; s < len(kw.Data); s += k * n {
			for j := range n {
				l := 0.0
				for i := range k {
					l += c.mag(kw.Data[s+i*n+j])
				}
				col[j] = math.Max(col[j], l)
			}
		}
		return perColumn(col, x, b)
	}
	if kx := c.known[x]; kx != nil {
		row := 0.0
		for r := 0; r < len(kx.Data)/k; r++ {
			s := 0.0
			for _, v := range kx.Data[r*k : (r+1)*k] {
				s += c.mag(v)
			}
			row = math.Max(row, s)
		}
		return func(v []float64) float64 { return mul(row, v[w]) + b.max(v) }
	}
	return func(v []float64) float64 { return mul(float64(k), mul(v[x], v[w])) + b.max(v) }
}

// convRule bounds a convolution: with a weight W [M, C/g, kH, kW], per
// output channel the L1 norm of its kernel times X's bound plus its bias
// (padding only lowers a window's sum); else the kernel volume times the
// bounds of X and W.
func (c *rangeCompiler) convRule(ins []int) boundFunc {
	x, w := ins[0], ins[1]
	b := c.bias(ins)
	s := c.shape[w]
	vol := 1
	for _, d := range s[1:] {
		vol *= d
	}
	if kw := c.known[w]; kw != nil {
		ch := make([]float64, s[0])
		for m := range ch {
			for _, v := range kw.Data[m*vol : (m+1)*vol] {
				ch[m] += c.mag(v)
			}
		}
		return perColumn(ch, x, b)
	}
	return func(v []float64) float64 { return mul(float64(vol), mul(v[x], v[w])) + b.max(v) }
}

// pass evaluates every rule for the input bound r. It returns the bound of
// every value (by index) and whether every check holds; it fills nodes
// when not nil.
func (c *rangeCompiler) pass(r float64, nodes []NodeRange) ([]float64, bool) {
	v := make([]float64, len(c.base))
	copy(v, c.base)
	ulp := 1 / c.enc.Scale()
	v[0] = r + ulp/2 // the input's rounding
	ok := r <= c.enc.Limit()
	for _, rl := range c.rules {
		x := rl.eval(v)
		nr := NodeRange{Bound: x, Checked: x, Limit: c.enc.Limit(), What: kindNames[rl.kind]}
		switch rl.kind {
		case kindProduct:
			// the truncation returns floor(z/2^f) or one more
			nr.Bound, nr.Product, nr.Limit = x+ulp, x, c.enc.SafeRange()
		case kindDifference:
			nr.Checked = 2 * x
		}
		if rl.outFn != nil {
			nr.Bound = rl.outFn(v)
		}
		v[rl.out] = nr.Bound
		ok = ok && nr.Checked <= nr.Limit
		if nodes != nil {
			nr.Index, nr.Name, nr.Op = rl.index, rl.node.Name, rl.node.Op
			nodes[rl.index] = nr
		}
	}
	return v, ok
}

// safeInput is the largest input bound under which every check holds,
// found by bisection on the bit patterns of non-negative float64s (they
// order like the values): every check grows with the input bound, and an
// input bound beyond the encoding's Limit fails.
func (c *rangeCompiler) safeInput() float64 {
	if _, ok := c.pass(0, nil); !ok {
		return 0
	}
	lo, hi := uint64(0), math.Float64bits(math.Nextafter(c.enc.Limit(), math.Inf(1)))
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if _, ok := c.pass(math.Float64frombits(mid), nil); ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Float64frombits(lo)
}
