package dealer

import (
	"fmt"
	"math"
	"slices"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Kind is a kind of correlated randomness.
type Kind uint8

// The kinds of material, one per protocol primitive of the engine.
const (
	// KindMatMul is a matrix triple (A [m,k], B [k,n], C = A·B), or a
	// batched one (A [b,m,k], B [b,k,n], C [b,m,n] = A·B per matrix).
	KindMatMul Kind = iota + 1
	// KindConv is a convolution triple (A, B, C = conv(A, B)) for the
	// shapes, window and group of a Conv node; the engine masks the input
	// itself (not its im2col expansion), so the opened mask is input-sized.
	KindConv
	// KindMul is an elementwise triple (A, B, C = A*B with broadcasting).
	KindMul
	// KindTrunc is truncation material: r, r >> f and msb(r) for uniform r.
	KindTrunc
	// KindSign is the material of one vectorised sign test fused with a
	// multiplication (ReLU): r with its bits XOR-shared, AND triples for a
	// 6-level carry circuit, a random bit rho shared both ways, and a
	// product pair (a, a*rho).
	KindSign
	// KindMax is the material of a vectorised max over windows of K values:
	// sign material for the K(K-1)/2 pairwise comparisons of every window,
	// AND triples for the fan-in of K-1 comparison bits per candidate, and
	// a random bit and product pair per candidate.
	KindMax
	// KindReluGate is the material of N sign gates by function secret
	// sharing (two parties only, see UsesFSS and gate.go): a ReLU in the
	// one round that opens x + r.
	KindReluGate
	// KindTruncReluGate is KindReluGate fused with a truncation's material
	// (KindTrunc): a product's truncation and ReLU in one round.
	KindTruncReluGate
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindMatMul:
		return "matmul"
	case KindConv:
		return "conv"
	case KindMul:
		return "mul"
	case KindTrunc:
		return "trunc"
	case KindSign:
		return "sign"
	case KindMax:
		return "max"
	case KindReluGate:
		return "relu-gate"
	case KindTruncReluGate:
		return "trunc-relu-gate"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Request describes one unit of material: what the engine asks for at one
// step of a plan's evaluation. The sequence of requests for a plan and batch
// (Schedule) is public and computed alike by the dealer and the parties.
type Request struct {
	Kind Kind
	// Node is the name of the plan node that consumes the material.
	Node string
	// X and Y are the operand shapes of a bilinear kind (MatMul, Conv, Mul).
	X, Y []int
	// Window and Group are a Conv's geometry.
	Window tensor.Window
	Group  int
	// N is the element count of a Trunc or Sign request, the number of
	// windows of a Max request.
	N int
	// K is the window size of a Max request.
	K int
	// FixedB names the weight whose long-term mask serves as B (MatMul and
	// Conv with weight masks, see Masks): the material then holds no B.
	// FixedA likewise names a weight whose mask serves as A (a MatMul with
	// the weight on the left): the material then holds no A. At most one
	// of them is set.
	FixedB string
	FixedA string
}

// Same reports whether r and o ask for the same material (Node aside).
func (r Request) Same(o Request) bool {
	return r.Kind == o.Kind && r.N == o.N && slices.Equal(r.X, o.X) && slices.Equal(r.Y, o.Y) &&
		r.Window == o.Window && r.Group == o.Group && r.FixedB == o.FixedB && r.FixedA == o.FixedA && r.K == o.K
}

// fixed is the weight whose mask serves as A or B, "" when none.
func (r Request) fixed() string { return r.FixedA + r.FixedB }

// String describes the request for error messages.
func (r Request) String() string {
	switch r.Kind {
	case KindMatMul, KindConv, KindMul:
		if r.FixedA != "" {
			return fmt.Sprintf("%s %v x %v (mask of %s on the left)", r.Kind, r.X, r.Y, r.FixedA)
		}
		if r.FixedB != "" {
			return fmt.Sprintf("%s %v x %v (mask of %s)", r.Kind, r.X, r.Y, r.FixedB)
		}
		return fmt.Sprintf("%s %v x %v", r.Kind, r.X, r.Y)
	}
	if r.Kind == KindMax {
		return fmt.Sprintf("%s [%d]x%d", r.Kind, r.N, r.K)
	}
	return fmt.Sprintf("%s [%d]", r.Kind, r.N)
}

// outShape is the shape of C for a bilinear request.
func (r Request) outShape() ([]int, error) {
	switch r.Kind {
	case KindMatMul:
		switch {
		case len(r.X) == 2 && len(r.Y) == 2 && r.X[1] == r.Y[0]:
			return []int{r.X[0], r.Y[1]}, nil
		case len(r.X) == 3 && len(r.Y) == 3 && r.X[0] == r.Y[0] && r.X[2] == r.Y[1]:
			return []int{r.X[0], r.X[1], r.Y[2]}, nil
		}
		return nil, fmt.Errorf("matmul shapes %v and %v", r.X, r.Y)
	case KindConv:
		return tensor.ConvShape(r.X, r.Y, r.Window, r.Group)
	case KindMul:
		return tensor.BroadcastShape(r.X, r.Y)
	}
	return nil, fmt.Errorf("%s is not bilinear", r.Kind)
}

// Bilinear evaluates the bilinear map of a MatMul, Conv or Mul request on
// ring elements: the product, convolution or broadcast product of x and y.
func (r Request) Bilinear(x, y *tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	switch r.Kind {
	case KindMatMul:
		if len(x.Shape) == 3 {
			return batchedMatMul(x, y)
		}
		return tensor.MatMul(x, y)
	case KindConv:
		return tensor.Conv2D(x, y, r.Window, r.Group)
	case KindMul:
		return tensor.MulBroadcast(x, y)
	}
	return nil, fmt.Errorf("%s is not bilinear", r.Kind)
}

// SignLevels is the depth of the carry circuit of a sign test: a radix-4
// tree over the 64 bits of a word (64 -> 16 -> 4 -> 1 groups), one round
// per level.
const SignLevels = 3

// ConstIsInteger reports whether a MulConst constant holds only integers of
// magnitude below 2^31: the engine then multiplies shares by them directly,
// exactly and without truncation (no material, no round).
func ConstIsInteger(c *plan.Const) bool {
	if c == nil {
		return false
	}
	for _, v := range c.Data {
		if v != math.Trunc(v) || math.Abs(v) >= 1<<31 {
			return false
		}
	}
	return true
}

// MaxStage is one stage of a max over windows: the candidates left are
// cut into Groups groups of Size values (the last group padded by repeating
// a value, which does not change a max) and each group's max is found with
// all its pairs compared at once.
type MaxStage struct{ Groups, Size int }

// MaxStages plans the max over k values: one stage when k <= 4 (2x2
// pooling: 6 comparisons, 7 rounds), else stages of groups of 3 (3x3
// pooling: 3 groups of 3 then 1 of 3, 12 comparisons, 12 rounds; a tree of
// pairwise maxima would take 8 comparisons and 20 rounds, all 36 pairs at
// once 8 rounds but 3 times the traffic).
func MaxStages(k int) []MaxStage {
	var out []MaxStage
	for k > 1 {
		if k <= 4 {
			return append(out, MaxStage{Groups: 1, Size: k})
		}
		g := (k + 2) / 3
		out = append(out, MaxStage{Groups: g, Size: 3})
		k = g
	}
	return out
}

// maxAndLevels is the number of ANDs per candidate at each level of the
// AND tree that combines the k-1 comparison bits of a candidate in a window
// of k values: each level pairs the bits left, an odd one waits.
func maxAndLevels(k int) []int {
	var out []int
	for t := k - 1; t > 1; t -= t / 2 {
		out = append(out, t/2)
	}
	return out
}

// scheduleWith is Schedule, with weight masks (see Masks) when masked is
// set: MatMul and Conv requests on a masked weight then name it in FixedB
// (or FixedA); with gates (two parties, UsesFSS) ReLU and MaxPool take
// sign gates (gateRequests).
func scheduleWith(p *plan.Plan, batch int, masked, gates bool) ([]Request, error) {
	shapes, err := p.Shapes(batch)
	if err != nil {
		return nil, fmt.Errorf("dealer: schedule: %w", err)
	}
	var fixed map[string]bool
	if masked {
		fixed = make(map[string]bool)
		for _, w := range MaskedWeights(p) {
			fixed[w] = true
		}
	}
	var out []Request
	for i := range p.Nodes {
		n := &p.Nodes[i]
		reqs, err := nodeRequests(n, shapes, fixed)
		if err != nil {
			return nil, fmt.Errorf("dealer: schedule: node %s (%s): %w", n.Name, n.Op, err)
		}
		if gates {
			reqs = gateRequests(p.Nodes, i, reqs)
		}
		out = append(out, reqs...)
	}
	return out, nil
}

// MatMulRequest is the product request of a MatMul node of geometry g
// over inputs a and b, with the weight masks of the weights for which
// masked reports true: B's mask when B enters the product as stored, else
// A's when A does.
func MatMulRequest(g plan.MatMulGeometry, a, b string, masked func(string) bool) Request {
	r := Request{Kind: KindMatMul, X: slices.Clone(g.X), Y: slices.Clone(g.Y)}
	switch {
	case g.BAsIs && masked(b):
		r.FixedB = b
	case g.AAsIs && masked(a):
		r.FixedA = a
	}
	return r
}

// nodeRequests is the material a node consumes, given every value's shape
// and the set of weights with long-term masks (nil when none).
func nodeRequests(n *plan.Node, shapes map[string][]int, masked map[string]bool) ([]Request, error) {
	fixedB := ""
	if n.Op == plan.Conv && len(n.Inputs) > 1 && masked[n.Inputs[1]] {
		fixedB = n.Inputs[1]
	}
	in := func(i int) []int { return shapes[n.Inputs[i]] }
	outSize := tensor.Size(shapes[n.Output])
	trunc := Request{Kind: KindTrunc, Node: n.Name, N: outSize}
	switch n.Op {
	case plan.MatMul:
		g, err := plan.MatMulGeometryOf(in(0), in(1))
		if err != nil {
			return nil, err
		}
		r := MatMulRequest(g, n.Inputs[0], n.Inputs[1], func(w string) bool { return masked[w] })
		r.Node = n.Name
		return []Request{r, trunc}, nil
	case plan.Conv:
		win, err := n.Attrs.ConvWindow(in(1))
		if err != nil {
			return nil, err
		}
		return []Request{{Kind: KindConv, Node: n.Name, X: slices.Clone(in(0)), Y: slices.Clone(in(1)),
			Window: win, Group: n.Attrs.Groups(), FixedB: fixedB}, trunc}, nil
	case plan.Mul:
		return []Request{{Kind: KindMul, Node: n.Name, X: slices.Clone(in(0)), Y: slices.Clone(in(1))}, trunc}, nil
	case plan.MulConst:
		if ConstIsInteger(n.Attrs.Const) {
			return nil, nil
		}
		return []Request{trunc}, nil
	case plan.Relu:
		return []Request{{Kind: KindSign, Node: n.Name, N: outSize}}, nil
	case plan.MaxPool:
		var out []Request
		for _, st := range MaxStages(tensor.Size(n.Attrs.Kernel)) {
			out = append(out, Request{Kind: KindMax, Node: n.Name, N: st.Groups * outSize, K: st.Size})
		}
		return out, nil
	case plan.AveragePool, plan.GlobalAveragePool:
		return []Request{trunc}, nil
	case plan.Add, plan.Sub, plan.Pad, plan.Flatten, plan.Reshape, plan.Identity,
		plan.Concat, plan.Transpose, plan.Slice, plan.Gather, plan.ReduceSum:
		return nil, nil
	}
	if pw, ok := plan.PiecewiseOf(n); ok {
		reqs := PiecewiseRequests(pw, shapes[n.Output])
		for i := range reqs {
			reqs[i].Node = n.Name
		}
		return reqs, nil
	}
	return nil, fmt.Errorf("unknown op %q", string(n.Op))
}

// batchedMatMul is the product of x [b, m, k] and y [b, k, n], matrix by
// matrix.
func batchedMatMul(x, y *tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	if len(x.Shape) != 3 || len(y.Shape) != 3 || x.Shape[0] != y.Shape[0] || x.Shape[2] != y.Shape[1] {
		return nil, fmt.Errorf("batched matmul of shapes %v and %v", x.Shape, y.Shape)
	}
	b, m, k, n := x.Shape[0], x.Shape[1], x.Shape[2], y.Shape[2]
	out := tensor.New[uint64](b, m, n)
	if m*k*n == 0 {
		return out, nil
	}
	for i := range b {
		tensor.MatMulInto(out.Data[i*m*n:(i+1)*m*n], x.Data[i*m*k:(i+1)*m*k], y.Data[i*k*n:(i+1)*k*n], m, k, n)
	}
	return out, nil
}

// PiecewiseRequests is the material of a piecewise op (plan.PiecewiseOf)
// over a value of the given shape, in the order the engine takes it: the
// truncation of an affine input (HardSigmoid), one comparison per
// threshold and element with its select, then x² (a triple and its
// truncation) when a piece has degree 2, then the truncation of the pieces
// that need one.
func PiecewiseRequests(pw *plan.Piecewise, shape []int) []Request {
	n := tensor.Size(shape)
	var out []Request
	if pw.Pre != nil {
		out = append(out, Request{Kind: KindTrunc, N: n})
	}
	out = append(out, Request{Kind: KindSign, N: len(pw.Thresholds) * n})
	if pw.Square() {
		out = append(out, Request{Kind: KindMul, X: slices.Clone(shape), Y: slices.Clone(shape)}, Request{Kind: KindTrunc, N: n})
	}
	if k := pw.Truncated(); k > 0 {
		out = append(out, Request{Kind: KindTrunc, N: k * n})
	}
	return out
}
