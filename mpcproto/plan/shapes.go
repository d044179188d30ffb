package plan

import (
	"fmt"
	"slices"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Shapes validates the plan, binds its free batch dimension to batch and
// infers the concrete shape of every value: the input, each weight and each
// node's output, by name. A plan whose input shape starts with -1 takes any
// batch >= 1; a plan without a free dimension takes batch 1 only. Errors
// about a node name it and the shapes involved.
func (p *Plan) Shapes(batch int) (map[string][]int, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	in, err := p.InputShape(batch)
	if err != nil {
		return nil, err
	}
	shapes := make(map[string][]int, 1+len(p.Weights)+len(p.Nodes))
	shapes[p.Input.Name] = in
	for _, w := range p.Weights {
		shapes[w.Name] = append([]int(nil), w.Shape...)
	}
	for i := range p.Nodes {
		n := &p.Nodes[i]
		ins := make([][]int, len(n.Inputs))
		for j, name := range n.Inputs {
			ins[j] = shapes[name]
		}
		out, err := NodeShape(n, ins)
		if err == nil {
			if cerr := checkShape(out, false); cerr != nil {
				err = fmt.Errorf("output: %w", cerr)
			}
		}
		if err != nil {
			return nil, &NodeError{Index: i, Name: n.Name, Op: n.Op, Err: err}
		}
		shapes[n.Output] = out
	}
	if f := p.Final; f != nil {
		if out := shapes[p.Output]; f.Axes[len(f.Axes)-1] >= len(out) {
			return nil, fmt.Errorf("final %s: axes %v out of range for output shape %v", f.Op, f.Axes, out)
		}
	}
	return shapes, nil
}

// InputShape is the plan's input shape with the free batch dimension bound
// to batch.
func (p *Plan) InputShape(batch int) ([]int, error) {
	in := append([]int(nil), p.Input.Shape...)
	if len(in) > 0 && in[0] == -1 {
		if batch < 1 || batch > MaxDim {
			return nil, fmt.Errorf("batch %d out of range", batch)
		}
		in[0] = batch
		if err := checkShape(in, false); err != nil {
			return nil, fmt.Errorf("plan input %q with batch %d: %w", p.Input.Name, batch, err)
		}
		return in, nil
	}
	if batch != 1 {
		return nil, fmt.Errorf("plan input %q has shape %v with no free batch dimension: batch must be 1, got %d",
			p.Input.Name, p.Input.Shape, batch)
	}
	return in, nil
}

// NodeShape infers the output shape of node n from the shapes of its inputs
// (in the order of n.Inputs). The node's attrs must be valid (Validate).
func NodeShape(n *Node, ins [][]int) ([]int, error) {
	a := &n.Attrs
	switch n.Op {
	case MatMul:
		return matMulShape(ins)
	case Conv:
		return convShape(ins, a)
	case Add, Sub, Mul:
		return Broadcast(ins[0], ins[1])
	case MulConst:
		return Broadcast(ins[0], a.Const.Shape)
	case Relu, Identity, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid, SiLU:
		return append([]int(nil), ins[0]...), nil
	case PRelu:
		out, err := Broadcast(ins[0], a.Const.Shape)
		if err != nil || !slices.Equal(out, ins[0]) {
			return nil, fmt.Errorf("slope shape %v does not broadcast to input shape %v", a.Const.Shape, ins[0])
		}
		return out, nil
	case MaxPool, AveragePool:
		return poolShape(ins[0], a)
	case GlobalAveragePool:
		x := ins[0]
		if len(x) != 4 {
			return nil, fmt.Errorf("input shape %v: want rank 4 (NCHW)", x)
		}
		return []int{x[0], x[1], 1, 1}, nil
	case Pad:
		return padShape(ins[0], a.Pads)
	case Flatten:
		x := ins[0]
		axis := a.Axis
		if axis < 0 {
			axis += len(x)
		}
		if axis < 0 || axis > len(x) {
			return nil, fmt.Errorf("axis %d out of range for input shape %v", a.Axis, x)
		}
		return []int{sizeOf(x[:axis]), sizeOf(x[axis:])}, nil
	case Reshape:
		return reshape(ins[0], a.Shape)
	case Concat:
		return concatShape(ins, a.Axis)
	case Transpose:
		out, _, err := tensor.TransposeIndex(ins[0], a.Perm)
		if err != nil {
			return nil, fmt.Errorf("input shape %v and perm %v: want one axis per dimension", ins[0], a.Perm)
		}
		return out, nil
	case Slice:
		_, _, count, err := SliceGeometry(ins[0], a)
		return count, err
	case Gather:
		x := ins[0]
		if a.Axis >= len(x) {
			return nil, fmt.Errorf("axis %d out of range for input shape %v", a.Axis, x)
		}
		for _, i := range a.Indices {
			if i >= x[a.Axis] {
				return nil, fmt.Errorf("index %d out of range for axis %d of input shape %v", i, a.Axis, x)
			}
		}
		return append(append(slices.Clone(x[:a.Axis]), a.IndexShape...), x[a.Axis+1:]...), nil
	case ReduceSum:
		return reduceShape(ins[0], a)
	}
	return nil, fmt.Errorf("unknown op %q", string(n.Op))
}

// convShape is Conv's output shape: X NCHW and W MCkHkW (C per group),
// with an optional bias [M].
func convShape(ins [][]int, a *Attrs) ([]int, error) {
	x, w := ins[0], ins[1]
	if len(x) != 4 || len(w) != 4 {
		return nil, fmt.Errorf("input shape %v and weight shape %v: want rank 4 (NCHW, MCkHkW)", x, w)
	}
	g := a.Groups()
	if x[1]%g != 0 || w[0]%g != 0 || x[1]/g != w[1] {
		return nil, fmt.Errorf("input shape %v, weight shape %v and group %d: channels do not agree", x, w, g)
	}
	if len(a.Kernel) == 2 && (a.Kernel[0] != w[2] || a.Kernel[1] != w[3]) {
		return nil, fmt.Errorf("kernel %v differs from weight shape %v", a.Kernel, w)
	}
	if len(ins) == 3 && !slices.Equal(ins[2], []int{w[0]}) {
		return nil, fmt.Errorf("bias shape %v: want [%d]", ins[2], w[0])
	}
	return windowShape(x, w[0], [2]int{w[2], w[3]}, a, false)
}

// poolShape is MaxPool's and AveragePool's output shape; every window must
// see at least one element of the input.
func poolShape(x []int, a *Attrs) ([]int, error) {
	if len(x) != 4 {
		return nil, fmt.Errorf("input shape %v: want rank 4 (NCHW)", x)
	}
	out, err := windowShape(x, x[1], [2]int{a.Kernel[0], a.Kernel[1]}, a, a.CeilMode)
	if err != nil {
		return nil, err
	}
	strides, pads, dil := a.Spatial()
	for i := 0; i < 2; i++ {
		ext := dil[i]*(a.Kernel[i]-1) + 1
		if pads[i] >= ext || (out[2+i]-1)*strides[i]-pads[i] >= x[2+i] {
			return nil, fmt.Errorf("input shape %v, kernel %v, strides %v, pads %v: a window lies entirely in the padding",
				x, a.Kernel, strides, pads)
		}
	}
	return out, nil
}

// padShape is Pad's output shape: pads holds the begin pads of every axis,
// then the end pads.
func padShape(x, pads []int) ([]int, error) {
	if len(pads) != 2*len(x) {
		return nil, fmt.Errorf("pads %v: want %d values for input shape %v", pads, 2*len(x), x)
	}
	out := make([]int, len(x))
	for i := range x {
		out[i] = x[i] + pads[i] + pads[len(x)+i]
	}
	if err := checkShape(out, false); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return out, nil
}

// reshape applies ONNX Reshape semantics (0 copies the input's dimension at
// the same index, one -1 is inferred).
func reshape(x, shape []int) ([]int, error) {
	out := make([]int, len(shape))
	total := sizeOf(x)
	known, free := 1, -1
	for i, d := range shape {
		switch {
		case d == 0:
			if i >= len(x) {
				return nil, fmt.Errorf("shape %v: 0 at index %d but input shape %v has rank %d", shape, i, x, len(x))
			}
			out[i] = x[i]
		case d == -1:
			free = i
			continue
		default:
			out[i] = d
		}
		known *= out[i]
		if known > MaxElements {
			return nil, fmt.Errorf("shape %v: too many elements", shape)
		}
	}
	if free >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape input shape %v (%d elements) to %v", x, total, shape)
		}
		out[free] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape input shape %v (%d elements) to %v", x, total, shape)
	}
	return out, nil
}

// windowShape is the output shape of a Conv (m output channels) or a pooling
// node over a [N, C, H, W] input.
func windowShape(x []int, m int, kernel [2]int, a *Attrs, ceil bool) ([]int, error) {
	strides, pads, dil := a.Spatial()
	out := []int{x[0], m, 0, 0}
	for i := 0; i < 2; i++ {
		o, err := WindowOut(x[2+i], kernel[i], strides[i], pads[i], pads[2+i], dil[i], ceil)
		if err != nil {
			return nil, fmt.Errorf("input shape %v, kernel %v, strides %v, pads %v, dilations %v: %w",
				x, kernel, strides, pads, dil, err)
		}
		out[2+i] = o
	}
	return out, nil
}

// WindowOut is the number of positions of a sliding window along one axis of
// length in, with kernel size k, stride s, padding begin/end and dilation d.
// With ceil set, a last partial window is kept unless it would start in the
// end padding (PyTorch's rule, which ONNX follows since opset 19).
func WindowOut(in, k, s, begin, end, d int, ceil bool) (int, error) {
	ext := d*(k-1) + 1
	span := in + begin + end - ext
	if span < 0 {
		return 0, fmt.Errorf("kernel extent %d exceeds padded input %d", ext, in+begin+end)
	}
	o := span/s + 1
	if ceil {
		o = (span+s-1)/s + 1
		if (o-1)*s >= in+begin {
			o--
		}
	}
	return o, nil
}

// Broadcast is the numpy (right-aligned) broadcast of two shapes; it is
// tensor.BroadcastShape, the rule the engine applies to the shares.
func Broadcast(a, b []int) ([]int, error) { return tensor.BroadcastShape(a, b) }

// concatShape is Concat's output shape.
func concatShape(ins [][]int, axis int) ([]int, error) {
	r := len(ins[0])
	if axis >= r {
		return nil, fmt.Errorf("axis %d out of range for input shape %v", axis, ins[0])
	}
	out := slices.Clone(ins[0])
	for _, x := range ins[1:] {
		if len(x) != r {
			return nil, fmt.Errorf("input shapes %v and %v: ranks differ", ins[0], x)
		}
		for i, d := range x {
			if i != axis && d != out[i] {
				return nil, fmt.Errorf("input shapes %v and %v differ outside axis %d", ins[0], x, axis)
			}
		}
		out[axis] += x[axis]
	}
	return out, nil
}

// reduceShape is ReduceSum's output shape.
func reduceShape(x []int, a *Attrs) ([]int, error) {
	red := make([]bool, len(x))
	for _, ax := range a.Axes {
		if ax >= len(x) {
			return nil, fmt.Errorf("axes %v out of range for input shape %v", a.Axes, x)
		}
		red[ax] = true
	}
	out := []int{}
	for i, d := range x {
		switch {
		case !red[i]:
			out = append(out, d)
		case a.KeepDims:
			out = append(out, 1)
		}
	}
	return out, nil
}

// SliceGeometry resolves a Slice node over an input of shape x into a
// start, a step and a count per axis (whole axes for the axes it does not
// list); it checks that every element taken lies inside its axis.
func SliceGeometry(x []int, a *Attrs) (start, step, count []int, err error) {
	r := len(x)
	start, step, count = make([]int, r), make([]int, r), slices.Clone(x)
	for i := range step {
		step[i] = 1
	}
	for i, ax := range a.Axes {
		if ax >= r {
			return nil, nil, nil, fmt.Errorf("axes %v out of range for input shape %v", a.Axes, x)
		}
		s, e, st := a.Starts[i], a.Ends[i], a.Steps[i]
		n := 0
		if st > 0 && e > s {
			n = (e - s + st - 1) / st
		} else if st < 0 && s > e {
			n = (s - e - st - 1) / -st
		}
		if n > 0 && (s < 0 || s >= x[ax] || s+(n-1)*st < 0 || s+(n-1)*st >= x[ax]) {
			return nil, nil, nil, fmt.Errorf("axis %d of input shape %v: start %d, end %d, step %d leave the axis", ax, x, s, e, st)
		}
		start[ax], step[ax], count[ax] = s, st, n
	}
	return start, step, count, nil
}
