package plan

import (
	"errors"
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// ErrUnsafeRange marks a range estimate under which some value may leave
// the range the secure engine computes correctly (see RangeEstimate.Err).
var ErrUnsafeRange = errors.New("values may overflow the fixed-point range")

// NodeRange is the worst-case magnitude of one node's values for inputs
// within a RangeEstimate's InputMax.
type NodeRange struct {
	// Index, Name and Op identify the node in Plan.Nodes.
	Index int
	Name  string
	Op    Op
	// Bound bounds |v| for every element v of the node's output.
	Bound float64
	// Product bounds the node's sums before the engine truncates them
	// (bias included), for the ops that end with a truncation (MatMul,
	// Conv, Mul, MulConst by a non-integer, AveragePool,
	// GlobalAveragePool); 0 for the others.
	Product float64
	// Checked is the magnitude the engine needs within Limit: Product for
	// a truncating op, twice Bound for MaxPool (it compares differences of
	// its inputs), Bound otherwise. What names it.
	Checked float64
	// Limit is the encoding's SafeRange for a truncating op, its Limit
	// (the ring) otherwise.
	Limit float64
	// What is "product sum", "pairwise difference" or "value".
	What string
}

// RangeEstimate is a worst-case bound on every value of a plan for inputs
// whose elements all satisfy |x| <= InputMax, from the plan and its
// plaintext weights (EstimateRange).
//
// It is a bound, not a prediction: each node's bound is the worst case of
// its op for any inputs within the bounds of its operands, and the worst
// cases of successive layers rarely meet (a ReLU network's activations are
// correlated, its signs are not all adverse), so a deep network's bounds
// can be orders of magnitude above anything real inputs reach. Use it to
// refuse inputs beyond a declared range, or to warn (not refuse) when an
// owner declared none; an input within SafeInput is always computed
// correctly.
type RangeEstimate struct {
	// Enc is the encoding the limits are for; InputMax is the input bound.
	Enc      fixed.Encoding
	InputMax float64
	// Nodes holds one entry per plan node, in plan order.
	Nodes []NodeRange
	// Largest indexes the node (in Nodes) with the largest Bound,
	// LargestProduct the one with the largest Product and Tightest the one
	// whose Checked is the largest fraction of its Limit; -1 when no node
	// qualifies (no nodes, no truncation).
	Largest, LargestProduct, Tightest int
	// OutputBound bounds the plan's output.
	OutputBound float64
	// OutputLimit is the largest magnitude a correct output can have, the
	// bound to give fixed.Encoding.CheckOutputBound: the encoding's
	// SafeRange when the output is a truncated product (possibly through
	// Relu, MaxPool, Pad or reshapes), since the truncation cannot return
	// more, else the larger of SafeRange and OutputBound.
	OutputLimit float64
	// SafeInput is the largest InputMax under which every Checked stays
	// within its Limit and the input within the encoding's Limit: the
	// plan's safe input range. Every bound grows with InputMax (as the
	// largest of affine functions a·InputMax + b, faster where the plan
	// multiplies two values that depend on the input), so every input
	// bound up to SafeInput is safe. It is 0 when the weights alone
	// overflow, and never above the encoding's Limit (the input must
	// encode), even for a plan without products.
	SafeInput float64
}

// Err returns nil when every value stays within its limit for inputs
// within InputMax, else an error wrapping ErrUnsafeRange that names the
// tightest node, what overflows and the safe input range.
func (r *RangeEstimate) Err() error {
	if lim := r.Enc.Limit(); r.InputMax > lim {
		return fmt.Errorf("input bound %.6g exceeds the encoding's limit ±%.6g: %w", r.InputMax, lim, ErrUnsafeRange)
	}
	if r.Tightest < 0 {
		return nil
	}
	n := r.Nodes[r.Tightest]
	if n.Checked <= n.Limit {
		return nil
	}
	return &NodeError{Index: n.Index, Name: n.Name, Op: n.Op, Err: fmt.Errorf(
		"worst-case %s %.3g exceeds ±%.3g at input bound %.6g (inputs up to ±%.6g are safe): %w",
		n.What, n.Checked, n.Limit, r.InputMax, r.SafeInput, ErrUnsafeRange)}
}

// EstimateRange bounds every value of plan p with weights w, encoded with
// enc, for inputs whose elements all satisfy |x| <= inputMax (see
// RangeEstimate). The bounds, per op, for operands bounded by a, b:
//
//   - MatMul and Conv with a weight operand: max over output columns
//     (channels) of the column's L1 norm times a, plus the column's bias;
//     the worst case for the given input bound, reached by the first layer.
//     With a weight as left operand, the largest row L1 norm times b; with
//     no weight operand, k·a·b (k the inner dimension or kernel volume).
//   - Add, Sub: a + b. Mul: a·b. MulConst: max|c|·a.
//   - Relu, MaxPool, Flatten, Reshape, Identity, Transpose, Slice, Gather:
//     a (MaxPool checks 2a, its comparisons' differences). Pad: max(a,
//     |value|). Concat: the largest of its inputs' bounds. ReduceSum: the
//     number of values summed times a.
//   - AveragePool, GlobalAveragePool: a (their sum times 1/count).
//
// Weights and constants count with the larger of their value and their
// encoding, the input with half a unit of rounding, and every truncation
// adds one unit (2^-Frac), so the bounds hold for the secure engine's
// values as well as for EvalPlain's. Errors name the node of an op it
// cannot bound.
func EstimateRange(p *Plan, w Weights, enc fixed.Encoding, inputMax float64) (*RangeEstimate, error) {
	if p == nil {
		return nil, errors.New("estimate range: plan is nil")
	}
	if err := enc.Validate(); err != nil {
		return nil, fmt.Errorf("estimate range: %w", err)
	}
	if math.IsNaN(inputMax) || math.IsInf(inputMax, 0) || inputMax < 0 {
		return nil, fmt.Errorf("estimate range: input bound %v must be finite and >= 0", inputMax)
	}
	shapes, err := p.Shapes(1)
	if err != nil {
		return nil, fmt.Errorf("estimate range: %w", err)
	}
	if err := CheckWeights(p, w); err != nil {
		return nil, fmt.Errorf("estimate range: %w", err)
	}
	c, err := compileRange(p, w, enc, shapes)
	if err != nil {
		return nil, fmt.Errorf("estimate range: %w", err)
	}
	r := &RangeEstimate{Enc: enc, InputMax: inputMax, Nodes: make([]NodeRange, len(p.Nodes))}
	out, _ := c.pass(inputMax, r.Nodes)
	r.OutputBound = out[c.index[p.Output]]
	r.OutputLimit = enc.SafeRange()
	if !c.capped[c.index[p.Output]] {
		r.OutputLimit = math.Max(r.OutputLimit, r.OutputBound)
	}
	r.Largest, r.LargestProduct, r.Tightest = extremes(r.Nodes)
	r.SafeInput = c.safeInput()
	return r, nil
}

// extremes returns the indexes of the largest Bound, the largest Product
// and the largest Checked/Limit ratio (-1 when none).
func extremes(nodes []NodeRange) (largest, product, tightest int) {
	largest, product, tightest = -1, -1, -1
	for i, n := range nodes {
		if largest < 0 || n.Bound > nodes[largest].Bound {
			largest = i
		}
		if n.Product > 0 && (product < 0 || n.Product > nodes[product].Product) {
			product = i
		}
		if tightest < 0 || n.Checked/n.Limit > nodes[tightest].Checked/nodes[tightest].Limit {
			tightest = i
		}
	}
	return largest, product, tightest
}

// OutputCapped reports whether a correct output of p can never exceed
// enc.SafeRange(): the output is a truncation's result, passed only
// through ops that do not grow it (Relu, MaxPool, reshapes, a small Pad).
// It depends on the plan alone (not the weights), so a client can run it:
// for such a plan an output beyond SafeRange proves an overflow
// (fixed.Encoding.CheckOutput).
func OutputCapped(p *Plan, enc fixed.Encoding) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("output range: %w", err)
	}
	shapes, err := p.Shapes(1)
	if err != nil {
		return false, fmt.Errorf("output range: %w", err)
	}
	zero := make(Weights, len(p.Weights))
	for _, v := range p.Weights {
		zero[v.Name] = tensor.New[float64](v.Shape...)
	}
	c, err := compileRange(p, zero, enc, shapes)
	if err != nil {
		return false, fmt.Errorf("output range: %w", err)
	}
	return c.capped[c.index[p.Output]], nil
}
