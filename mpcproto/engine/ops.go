package engine

import (
	"fmt"
	"slices"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

type shared = tensor.Dense[uint64]

// evalNode evaluates one node on shares; out is the output shape the plan
// infers for it (used by the shape-only ops and checked for the others).
func (p *party) evalNode(n *plan.Node, ins []*shared, out []int) (*shared, error) {
	res, pending, err := p.evalRaw(n, ins, out)
	if err == nil && pending {
		res, err = p.truncTensor(res)
	}
	if err != nil {
		return nil, p.wrap(err)
	}
	return p.checkShape(res, out)
}

func (p *party) wrap(err error) error {
	if _, ok := err.(*ProtocolError); ok {
		return err
	}
	return p.fail(-1, err)
}

func (p *party) checkShape(res *shared, out []int) (*shared, error) {
	if !slices.Equal(res.Shape, out) {
		return nil, p.failf("output shape %v differs from the plan's %v", res.Shape, out)
	}
	return res, nil
}

// evalFused evaluates a node whose result awaits a truncation together with
// the Relu (or fusable piecewise op: Clip) node that follows it: the
// truncation and the sign test share their first round (truncRelu,
// piecewise with a pending input). It returns both nodes' outputs.
func (p *party) evalFused(n, relu *plan.Node, ins []*shared, out []int) (t, y *shared, err error) {
	res, pending, err := p.evalRaw(n, ins, out)
	if err != nil {
		return nil, nil, p.wrap(err)
	}
	if !pending {
		return nil, nil, p.failf("internal: node has no pending truncation")
	}
	p.node = relu
	var td, yd []uint64
	if relu.Op == plan.Relu {
		td, yd, err = p.truncRelu(res.Data)
	} else {
		pw, _ := plan.PiecewiseOf(relu)
		td, yd, err = p.piecewise(pw, res, true)
	}
	if err != nil {
		return nil, nil, p.wrap(err)
	}
	t, err = p.checkShape(&shared{Shape: res.Shape, Data: td}, out)
	if err != nil {
		return nil, nil, err
	}
	return t, &shared{Shape: res.Shape, Data: yd}, nil
}

// truncates reports whether a node's evaluation ends with a truncation
// (which evalRaw leaves pending): the dealer's schedule says the same.
func truncates(n *plan.Node) bool { return dealer.Truncates(n) }

// evalRaw evaluates one node, leaving out the final truncation of the ops
// that end with one (pending is then true: the result carries 2f
// fractional bits).
func (p *party) evalRaw(n *plan.Node, ins []*shared, out []int) (res *shared, pending bool, err error) {
	pending = truncates(n)
	switch n.Op {
	case plan.MatMul:
		res, err = p.matmul(n, ins)
	case plan.Conv:
		res, err = p.conv(n, ins)
	case plan.Add, plan.Sub:
		res, err = p.addSub(n.Op == plan.Sub, ins[0], ins[1])
	case plan.Mul:
		res, err = p.bilinear(dealer.Request{Kind: dealer.KindMul, X: ins[0].Shape, Y: ins[1].Shape}, ins[0], ins[1])
	case plan.MulConst:
		res, err = p.mulConst(n.Attrs.Const, ins[0])
	case plan.Relu:
		var d []uint64
		if d, err = p.relu(ins[0].Data); err == nil {
			res = &shared{Shape: ins[0].Shape, Data: d}
		}
	case plan.MaxPool:
		res, err = p.maxPool(n, ins[0])
	case plan.AveragePool:
		res, err = p.avgPool(n, ins[0])
	case plan.GlobalAveragePool:
		res, err = p.globalAvgPool(ins[0])
	case plan.Pad:
		res, err = p.pad(n, ins[0])
	case plan.Flatten, plan.Reshape, plan.Identity:
		res, err = ins[0].Reshape(out...)
	case plan.Concat:
		res, err = tensor.Concat(ins, n.Attrs.Axis)
	case plan.Transpose, plan.Slice, plan.Gather:
		res, err = move(n, ins[0])
	case plan.ReduceSum:
		res, err = tensor.ReduceSum(ins[0], n.Attrs.Axes, n.Attrs.KeepDims)
	case plan.Clip, plan.LeakyRelu, plan.PRelu, plan.HardSigmoid, plan.HardSwish, plan.Sigmoid, plan.SiLU:
		pw, _ := plan.PiecewiseOf(n)
		var y []uint64
		if _, y, err = p.piecewise(pw, ins[0], false); err == nil {
			res = &shared{Shape: ins[0].Shape, Data: y}
		}
	default:
		return nil, false, p.failf("unknown op %q", string(n.Op))
	}
	return res, pending, err
}

// truncTensor truncates a product's shares.
func (p *party) truncTensor(z *shared) (*shared, error) {
	d, err := p.trunc(z.Data)
	if err != nil {
		return nil, err
	}
	return &shared{Shape: z.Shape, Data: d}, nil
}

// matmul computes A·B (+ bias) as one product of the dealer's kind, after
// moving the shares as plan.MatMulGeometry says (local index maps).
func (p *party) matmul(n *plan.Node, ins []*shared) (*shared, error) {
	a, b := ins[0], ins[1]
	g, err := plan.MatMulGeometryOf(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	req := dealer.MatMulRequest(g, n.Inputs[0], n.Inputs[1], func(w string) bool { return p.fixedB(w) != "" })
	x, y, err := matmulOperands(g, a, b)
	if err != nil {
		return nil, err
	}
	z, err := p.bilinear(req, x, y)
	if err != nil {
		return nil, err
	}
	if g.Mode == plan.MatMulLeft {
		if z, err = tensor.Gather(z, []int{tensor.Size(g.Out)}, g.LeftOutIndex(), 0); err != nil {
			return nil, err
		}
	}
	if len(ins) == 3 {
		// the product carries 2f fractional bits: add the bias scaled to
		// match, before the (pending) truncation, along the last dimension
		bias := ins[2]
		if len(g.Out) == 0 || !slices.Equal(bias.Shape, g.Out[len(g.Out)-1:]) {
			return nil, fmt.Errorf("bias shape %v for output shape %v", bias.Shape, g.Out)
		}
		cols := len(bias.Data)
		for i := range z.Data {
			z.Data[i] += bias.Data[i%cols] << p.enc.Frac
		}
	}
	return z.Reshape(g.Out...)
}

// matmulOperands arranges the shares of A and B as the operands of the
// product of geometry g.
func matmulOperands(g plan.MatMulGeometry, a, b *shared) (x, y *shared, err error) {
	switch g.Mode {
	case plan.MatMulRows:
		x = &shared{Shape: g.X, Data: a.Data}
		y = &shared{Shape: g.Y, Data: b.Data}
	case plan.MatMulLeft:
		x = &shared{Shape: g.X, Data: a.Data}
		if y, err = tensor.Gather(b, g.Y, g.LeftIndex(), 0); err != nil {
			return nil, nil, err
		}
	default:
		if x, err = broadcastMatrices(a, g.Batch, g.M, g.K, g.X); err != nil {
			return nil, nil, err
		}
		if y, err = broadcastMatrices(b, g.Batch, g.K, g.N, g.Y); err != nil {
			return nil, nil, err
		}
	}
	if len(x.Data) != tensor.Size(x.Shape) || len(y.Data) != tensor.Size(y.Shape) {
		return nil, nil, fmt.Errorf("matmul of shapes %v and %v", a.Shape, b.Shape)
	}
	return x, y, nil
}

// broadcastMatrices expands t, a stack of r x c matrices (1-D promoted),
// to the batch shape and lays it out as shape [batch, r, c].
func broadcastMatrices(t *shared, batch []int, r, c int, shape []int) (*shared, error) {
	full := append(slices.Clone(batch), r, c)
	src := t.Shape
	if len(src) == 1 {
		if r == 1 {
			src = []int{1, src[0]}
		} else {
			src = []int{src[0], 1}
		}
	}
	e, err := tensor.Broadcast(&shared{Shape: src, Data: t.Data}, full)
	if err != nil {
		return nil, err
	}
	return &shared{Shape: shape, Data: e.Data}, nil
}

func (p *party) conv(n *plan.Node, ins []*shared) (*shared, error) {
	x, w := ins[0], ins[1]
	win, err := n.Attrs.ConvWindow(w.Shape)
	if err != nil {
		return nil, err
	}
	req := dealer.Request{Kind: dealer.KindConv, X: x.Shape, Y: w.Shape, Window: win, Group: n.Attrs.Groups(),
		FixedB: p.fixedB(n.Inputs[1])}
	z, err := p.bilinear(req, x, w)
	if err != nil {
		return nil, err
	}
	if len(ins) == 3 {
		b := ins[2]
		m := z.Shape[1]
		if !slices.Equal(b.Shape, []int{m}) {
			return nil, fmt.Errorf("bias shape %v, want [%d]", b.Shape, m)
		}
		plane := z.Shape[2] * z.Shape[3]
		for i := range z.Data {
			z.Data[i] += b.Data[(i/plane)%m] << p.enc.Frac
		}
	}
	return z, nil
}

func (p *party) addSub(sub bool, a, b *shared) (*shared, error) {
	shape, err := tensor.BroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	ea, err := tensor.Broadcast(a, shape)
	if err != nil {
		return nil, err
	}
	eb, err := tensor.Broadcast(b, shape)
	if err != nil {
		return nil, err
	}
	out := tensor.New[uint64](shape...)
	for i := range out.Data {
		if sub {
			out.Data[i] = ea.Data[i] - eb.Data[i]
		} else {
			out.Data[i] = ea.Data[i] + eb.Data[i]
		}
	}
	return out, nil
}

// mulConst multiplies by a public constant: locally, by the integers
// themselves when the constant holds only integers (exact, no round), else
// by its encoding followed by a truncation.
func (p *party) mulConst(c *plan.Const, x *shared) (*shared, error) {
	if c == nil {
		return nil, fmt.Errorf("missing constant")
	}
	ct, err := tensor.From(c.Shape, slices.Clone(c.Data))
	if err != nil {
		return nil, fmt.Errorf("constant: %w", err)
	}
	integer := dealer.ConstIsInteger(c)
	enc := tensor.New[uint64](ct.Shape...)
	for i, v := range ct.Data {
		if integer {
			enc.Data[i] = uint64(int64(v))
		} else if enc.Data[i], err = p.enc.EncodeValue(v); err != nil {
			return nil, fmt.Errorf("constant element %d: %w", i, err)
		}
	}
	// an integer constant gives the exact result; otherwise the product
	// awaits a truncation (see truncates)
	return tensor.MulBroadcast(x, enc)
}

// poolWindows gathers the windows of a pooling node over x: the output
// shape, the number of values per window and the index map of
// tensor.WindowIndex, laid out [k][output position] with -1 for padding.
func poolWindows(n *plan.Node, x *shared) (out []int, k int, idx []int, err error) {
	win, err := n.Attrs.PoolWindow()
	if err != nil {
		return nil, 0, nil, err
	}
	oh, ow, idx, err := tensor.WindowIndex(x.Shape, win)
	if err != nil {
		return nil, 0, nil, err
	}
	out = []int{x.Shape[0], x.Shape[1], oh, ow}
	return out, len(idx) / max(tensor.Size(out), 1), idx, nil
}

func (p *party) maxPool(n *plan.Node, x *shared) (*shared, error) {
	outShape, k, idx, err := poolWindows(n, x)
	if err != nil {
		return nil, err
	}
	size := tensor.Size(outShape)
	if err := repeatInside(idx, k, size); err != nil {
		return nil, err
	}
	all, err := tensor.Gather(x, []int{k * size}, idx, 0)
	if err != nil {
		return nil, err
	}
	cands := all.Data // [k][size]
	if p.gates {
		if cands, err = p.maxTree(cands, k, size); err != nil {
			return nil, err
		}
		return &shared{Shape: outShape, Data: cands}, nil
	}
	for _, st := range dealer.MaxStages(k) {
		// arrange the candidates as [st.Size][st.Groups*size]: value j of
		// group g, window s; the last group repeats its last candidate
		vals := make([]uint64, st.Size*st.Groups*size)
		for j := range st.Size {
			for g := range st.Groups {
				c := min(g*st.Size+j, k-1)
				copy(vals[(j*st.Groups+g)*size:(j*st.Groups+g+1)*size], cands[c*size:(c+1)*size])
			}
		}
		if cands, err = p.maxWindows(vals, st.Size, st.Groups*size); err != nil {
			return nil, err
		}
		k = st.Groups
	}
	return &shared{Shape: outShape, Data: cands}, nil
}

// repeatInside makes padding never win a max: a padded position of a
// window (idx [k][size], -1) repeats the window's first position inside
// the input, which leaves the max unchanged.
func repeatInside(idx []int, k, size int) error {
	for o := range size {
		first := -1
		for j := range k {
			if idx[j*size+o] >= 0 {
				first = idx[j*size+o]
				break
			}
		}
		if first < 0 {
			return fmt.Errorf("a pooling window lies entirely in the padding")
		}
		for j := range k {
			if idx[j*size+o] < 0 {
				idx[j*size+o] = first
			}
		}
	}
	return nil
}

// avgPool sums every window and multiplies the sum by the encoding of
// 1/count (plan's PoolCounts); the product awaits a truncation.
func (p *party) avgPool(n *plan.Node, x *shared) (*shared, error) {
	outShape, k, idx, err := poolWindows(n, x)
	if err != nil {
		return nil, err
	}
	size := tensor.Size(outShape)
	sum := make([]uint64, size)
	for j := range k {
		for o := range size {
			if i := idx[j*size+o]; i >= 0 {
				sum[o] += x.Data[i]
			}
		}
	}
	counts, err := n.Attrs.PoolCounts(x.Shape[2], x.Shape[3])
	if err != nil {
		return nil, err
	}
	scale := make([]uint64, len(counts))
	for i, cnt := range counts {
		if scale[i], err = p.enc.EncodeValue(1 / float64(cnt)); err != nil {
			return nil, err
		}
	}
	for o := range sum {
		sum[o] *= scale[o%len(scale)]
	}
	return &shared{Shape: outShape, Data: sum}, nil // awaits a truncation
}

func (p *party) globalAvgPool(x *shared) (*shared, error) {
	if len(x.Shape) != 4 {
		return nil, fmt.Errorf("input shape %v: want NCHW", x.Shape)
	}
	nc, hw := x.Shape[0]*x.Shape[1], x.Shape[2]*x.Shape[3]
	inv, err := p.enc.EncodeValue(1 / float64(hw))
	if err != nil {
		return nil, err
	}
	sum := make([]uint64, nc)
	for i := range nc {
		var s uint64
		for _, v := range x.Data[i*hw : (i+1)*hw] {
			s += v
		}
		sum[i] = s * inv
	}
	return &shared{Shape: []int{x.Shape[0], x.Shape[1], 1, 1}, Data: sum}, nil // awaits a truncation
}

func (p *party) pad(n *plan.Node, x *shared) (*shared, error) {
	v, err := p.enc.EncodeValue(n.Attrs.Value)
	if err != nil {
		return nil, fmt.Errorf("pad value: %w", err)
	}
	var fill uint64
	if p.lead() {
		fill = v // the constant is public: party 0 holds it, the others 0
	}
	return tensor.Pad(x, n.Attrs.Pads, fill)
}

// move computes Transpose, Slice and Gather: local index maps applied to
// the shares.
func move(n *plan.Node, x *shared) (*shared, error) {
	a := &n.Attrs
	switch n.Op {
	case plan.Transpose:
		out, idx, err := tensor.TransposeIndex(x.Shape, a.Perm)
		if err != nil {
			return nil, err
		}
		return tensor.Gather(x, out, idx, 0)
	case plan.Slice:
		start, step, count, err := plan.SliceGeometry(x.Shape, a)
		if err != nil {
			return nil, err
		}
		idx, err := tensor.SliceIndex(x.Shape, start, step, count)
		if err != nil {
			return nil, err
		}
		return tensor.Gather(x, count, idx, 0)
	default:
		out, idx, err := tensor.GatherIndex(x.Shape, a.Axis, a.Indices, a.IndexShape)
		if err != nil {
			return nil, err
		}
		return tensor.Gather(x, out, idx, 0)
	}
}

// fuses reports whether node next, reading only the output of the
// truncating node before it, is evaluated together with that truncation:
// a Relu, or a piecewise op that takes a pending product (Clip).
func fuses(next *plan.Node) bool {
	if next.Op == plan.Relu {
		return true
	}
	pw, ok := plan.PiecewiseOf(next)
	return ok && pw.Fusable()
}
