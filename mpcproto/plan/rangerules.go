package plan

import (
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// rangeKind is what a node's range is checked as.
type rangeKind int

const (
	kindValue      rangeKind = iota // a value in the ring: |v| <= Limit
	kindProduct                     // a product sum before truncation: |z| <= SafeRange
	kindDifference                  // MaxPool: differences of its inputs, |2v| <= Limit
)

var kindNames = [...]string{kindValue: "value", kindProduct: "product sum", kindDifference: "pairwise difference"}

// boundFunc maps the bounds of every value (by index) to the magnitude of a
// node's result in real arithmetic (for a truncating op: before truncation).
type boundFunc func(v []float64) float64

// rangeRule is one node's bound, with the weights' summaries precomputed.
type rangeRule struct {
	node  *Node
	index int
	out   int
	kind  rangeKind
	eval  boundFunc
	// outFn, when set, bounds the node's output (eval then bounds what
	// is checked: comparisons or a product before truncation).
	outFn boundFunc
}

// rangeCompiler holds a plan's rules: EstimateRange evaluates them at the
// given input bound, then many times to find the safe input bound.
type rangeCompiler struct {
	enc    fixed.Encoding
	shapes map[string][]int
	index  map[string]int           // value name -> index; the input is 0
	shape  [][]int                  // value index -> shape (batch 1)
	known  []*tensor.Dense[float64] // a weight's values (also reshaped), else nil
	base   []float64                // the weights' bounds
	capped []bool                   // a correct value is at most SafeRange (a truncation's result)
	rules  []rangeRule
	// outBound holds the output bounds of the nodes whose rule checks
	// something else (the piecewise ops)
	outBound map[*Node]boundFunc
}

// compileRange indexes the plan's values and builds a rule per node.
func compileRange(p *Plan, w Weights, enc fixed.Encoding, shapes map[string][]int) (*rangeCompiler, error) {
	n := 1 + len(p.Weights) + len(p.Nodes)
	c := &rangeCompiler{enc: enc, shapes: shapes, index: make(map[string]int, n),
		shape: make([][]int, n), known: make([]*tensor.Dense[float64], n), base: make([]float64, n),
		capped: make([]bool, n), outBound: map[*Node]boundFunc{}}
	c.index[p.Input.Name] = 0
	c.shape[0] = shapes[p.Input.Name]
	for i, v := range p.Weights {
		t := w[v.Name]
		c.index[v.Name] = 1 + i
		c.shape[1+i] = t.Shape
		c.known[1+i] = t
		for _, x := range t.Data {
			c.base[1+i] = math.Max(c.base[1+i], c.mag(x))
		}
	}
	for i := range p.Nodes {
		nd := &p.Nodes[i]
		out := 1 + len(p.Weights) + i
		eval, kind, err := c.rule(nd)
		if err != nil {
			return nil, &NodeError{Index: i, Name: nd.Name, Op: nd.Op, Err: err}
		}
		c.index[nd.Output] = out
		c.shape[out] = shapes[nd.Output]
		c.capped[out] = c.isCapped(nd, kind)
		if k := c.known[c.index[nd.Inputs[0]]]; k != nil && (nd.Op == Flatten || nd.Op == Reshape || nd.Op == Identity) {
			c.known[out] = &tensor.Dense[float64]{Shape: shapes[nd.Output], Data: k.Data}
		}
		c.rules = append(c.rules, rangeRule{node: nd, index: i, out: out, kind: kind, eval: eval, outFn: c.outBound[nd]})
	}
	return c, nil
}

// isCapped reports whether a correct value of node n's output is at most
// SafeRange: a truncation's result, or one passed through ops that do not
// grow it.
func (c *rangeCompiler) isCapped(n *Node, kind rangeKind) bool {
	if kind == kindProduct {
		return true
	}
	in := c.capped[c.index[n.Inputs[0]]]
	switch n.Op {
	case Relu, MaxPool, Flatten, Reshape, Identity, Transpose, Slice, Gather:
		return in
	case Concat:
		for _, name := range n.Inputs {
			in = in && c.capped[c.index[name]]
		}
		return in
	case Pad:
		return in && c.mag(n.Attrs.Value) <= c.enc.SafeRange()
	case Sigmoid, HardSigmoid:
		return true
	case Clip:
		a := n.Attrs
		return in || (a.Min != nil && a.Max != nil && math.Max(math.Abs(*a.Min), math.Abs(*a.Max)) <= c.enc.SafeRange())
	case SiLU, HardSwish:
		return in
	case LeakyRelu, PRelu:
		pw, _ := PiecewiseOf(n)
		return in && maxSlope(pw) <= 1
	}
	return false
}

// mag is the larger of |x| and the magnitude of x's encoding: a bound on a
// constant both in real arithmetic and in the engine.
func (c *rangeCompiler) mag(x float64) float64 {
	s := c.enc.Scale()
	return math.Max(math.Abs(x), math.Abs(math.Round(x*s)/s))
}

// mul is a*b with 0 when either is 0 (so that 0·Inf is 0, not NaN).
func mul(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return a * b
}

// rule builds node n's bound: every op of Ops has one; an unknown op is an
// error, never a silent 0.
func (c *rangeCompiler) rule(n *Node) (boundFunc, rangeKind, error) {
	ins := make([]int, len(n.Inputs))
	for j, name := range n.Inputs {
		ix, ok := c.index[name]
		if !ok {
			return nil, 0, fmt.Errorf("input %q is not defined before use", name)
		}
		ins[j] = ix
	}
	x := ins[0]
	switch n.Op {
	case MatMul:
		return c.matmulRule(ins), kindProduct, nil
	case Conv:
		return c.convRule(ins), kindProduct, nil
	case Add, Sub:
		y := ins[1]
		return func(v []float64) float64 { return v[x] + v[y] }, kindValue, nil
	case Mul:
		y := ins[1]
		return func(v []float64) float64 { return mul(v[x], v[y]) }, kindProduct, nil
	case MulConst:
		return c.mulConstRule(n, x)
	case Relu, Flatten, Reshape, Identity, Transpose, Slice, Gather:
		return func(v []float64) float64 { return v[x] }, kindValue, nil
	case Concat:
		return func(v []float64) float64 {
			m := 0.0
			for _, i := range ins {
				m = math.Max(m, v[i])
			}
			return m
		}, kindValue, nil
	case ReduceSum:
		s := c.shapes[n.Inputs[0]]
		cnt := 1
		for _, ax := range n.Attrs.Axes {
			if ax >= len(s) {
				return nil, 0, fmt.Errorf("axes %v out of range for input shape %v", n.Attrs.Axes, s)
			}
			cnt *= s[ax]
		}
		f := float64(cnt)
		return func(v []float64) float64 { return mul(f, v[x]) }, kindValue, nil
	case MaxPool:
		return func(v []float64) float64 { return v[x] }, kindDifference, nil
	case AveragePool:
		if len(n.Attrs.Kernel) != 2 {
			return nil, 0, fmt.Errorf("kernel %v: want 2 values", n.Attrs.Kernel)
		}
		f := c.poolFactor(n.Attrs.Kernel[0] * n.Attrs.Kernel[1])
		return func(v []float64) float64 { return mul(f, v[x]) }, kindProduct, nil
	case GlobalAveragePool:
		s := c.shapes[n.Inputs[0]]
		if len(s) != 4 {
			return nil, 0, fmt.Errorf("input shape %v: want rank 4 (NCHW)", s)
		}
		f := math.Max(1, c.divisorFactor(s[2]*s[3]))
		return func(v []float64) float64 { return mul(f, v[x]) }, kindProduct, nil
	case Pad:
		pv := c.mag(n.Attrs.Value)
		return func(v []float64) float64 { return math.Max(v[x], pv) }, kindValue, nil
	case Clip, LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid, SiLU:
		return c.piecewiseRule(n, x)
	}
	return nil, 0, fmt.Errorf("no range rule for op %q", string(n.Op))
}

// mulConstRule: max|c|·a. An integer constant (the dealer's rule, see
// integerConst) multiplies the shares exactly, without truncation.
func (c *rangeCompiler) mulConstRule(n *Node, x int) (boundFunc, rangeKind, error) {
	k := n.Attrs.Const
	if k == nil {
		return nil, 0, fmt.Errorf("const is missing")
	}
	m := 0.0
	for _, v := range k.Data {
		m = math.Max(m, c.mag(v))
	}
	kind := kindProduct
	if integerConst(k) {
		kind = kindValue
	}
	return func(v []float64) float64 { return mul(m, v[x]) }, kind, nil
}

// integerConst is dealer.ConstIsInteger (plan cannot import the dealer; a
// test checks that they agree): integers of magnitude below 2^31.
func integerConst(c *Const) bool {
	for _, v := range c.Data {
		if v != math.Trunc(v) || math.Abs(v) >= 1<<31 {
			return false
		}
	}
	return true
}

// poolFactor bounds the ratio of a window average computed by the engine
// (the sum times the encoding of 1/count) to the largest magnitude in the
// window, over the divisors 1..k: 1 in real arithmetic, slightly more
// where 1/count rounds up.
func (c *rangeCompiler) poolFactor(k int) float64 {
	f := 1.0
	const exact = 1 << 16
	for cnt := 1; cnt <= min(k, exact); cnt++ {
		f = math.Max(f, c.divisorFactor(cnt))
	}
	if k > exact {
		// cnt·round(2^f/cnt) <= 2^f + cnt/2, and the encoding is 0 from
		// cnt > 2^(f+1) on
		half := c.enc.Scale() * 2
		f = math.Max(f, 1+math.Min(float64(k), half)/half)
	}
	return f
}

// divisorFactor is cnt times the engine's encoding of 1/cnt, in real terms.
func (c *rangeCompiler) divisorFactor(cnt int) float64 {
	s := c.enc.Scale()
	return float64(cnt) * math.Round(s/float64(cnt)) / s
}

// pieceMax bounds |p| on [lo, hi] (finite when lo <= hi are): its
// largest value at the ends and the vertex, plus the encoding error of its
// coefficients when it is not exact; with per-element slopes (largest
// |slope| s), |c0| + s·umax.
func (c *rangeCompiler) pieceMax(p Poly, lo, hi, s float64) float64 {
	umax := math.Max(math.Abs(lo-p.M), math.Abs(hi-p.M))
	if math.IsInf(umax, 0) {
		return umax
	}
	enc := 0.0
	if !p.Exact() {
		enc = (1 + umax + umax*umax) / c.enc.Scale() / 2
	}
	if p.Slope != nil {
		return c.mag(p.C[0]) + mul(s, umax) + enc
	}
	top := math.Max(math.Abs(p.Eval(lo, 0)), math.Abs(p.Eval(hi, 0)))
	if p.C[2] != 0 {
		if v := p.M - p.C[1]/(2*p.C[2]); v > lo && v < hi {
			top = math.Max(top, math.Abs(p.Eval(v, 0)))
		}
	}
	return top + enc
}

// maxSlope is the largest |slope| of a piece with per-element slopes, or
// of the first piece's C[1] (LeakyRelu's alpha), at least 0.
func maxSlope(pw *Piecewise) float64 {
	m := math.Abs(pw.Pieces[0].C[1])
	for _, s := range pw.slopes() {
		m = math.Max(m, math.Abs(s))
	}
	return m
}

// piecewiseRule bounds a piecewise op. What is checked: with an affine
// input (HardSigmoid) the product |alpha|·a + |beta| plus the largest
// threshold, before its truncation; with a truncated unbounded piece
// (LeakyRelu, PRelu) the product max|slope|·a; else the comparisons'
// differences a + max|t| in the ring. The output: over every piece
// meeting [−a, a], |c0| + |c1|·umax + |c2|·umax² (umax the largest |x − M|
// there), plus the approximation's bound and a few units of rounding.
func (c *rangeCompiler) piecewiseRule(n *Node, x int) (boundFunc, rangeKind, error) {
	pw, _ := PiecewiseOf(n)
	if err := pw.check(); err != nil {
		return nil, 0, err
	}
	maxT := 0.0
	for _, t := range pw.Thresholds {
		maxT = math.Max(maxT, math.Abs(t))
	}
	ulp := 1 / c.enc.Scale()
	slack := Approximated[n.Op] + 4*ulp
	arg := func(v []float64) float64 { return v[x] }
	if pw.Pre != nil {
		al, be := c.mag(pw.Pre[0]), c.mag(pw.Pre[1])
		arg = func(v []float64) float64 { return mul(al, v[x]) + be + ulp }
	}
	s := maxSlope(pw)
	c.outBound[n] = func(v []float64) float64 {
		a := arg(v)
		best := 0.0
		for i, p := range pw.Pieces {
			lo, hi := math.Inf(-1), math.Inf(1)
			if i > 0 {
				lo = pw.Thresholds[i-1]
			}
			if i < len(pw.Thresholds) {
				hi = pw.Thresholds[i]
			}
			lo, hi = math.Max(lo, -a), math.Min(hi, a)
			if lo > hi {
				continue
			}
			best = math.Max(best, c.pieceMax(p, lo, hi, s))
		}
		return best + slack
	}
	switch {
	case pw.Pre != nil:
		return func(v []float64) float64 { return arg(v) + maxT }, kindProduct, nil
	case n.Op == LeakyRelu || n.Op == PRelu:
		return func(v []float64) float64 { return mul(math.Max(s, 1), v[x]) }, kindProduct, nil
	}
	return func(v []float64) float64 { return v[x] + maxT }, kindValue, nil
}
