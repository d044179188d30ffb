package plan

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// EvalPlain evaluates the plan in float64 on plaintext weights: the
// "plaintext twin" used for plain hosting and as the reference the secure
// engine is tested against. It is written with direct loops, independent of
// the engine's code. The weights must be exactly the plan's, with the
// declared shapes. x's shape must be the plan's input shape, with any batch
// size in the leading dimension when the plan's batch dimension is free.
func EvalPlain(p *Plan, w Weights, x *tensor.Dense[float64]) (*tensor.Dense[float64], error) {
	if p == nil {
		return nil, errors.New("eval plain: plan is nil")
	}
	if x == nil {
		return nil, errors.New("eval plain: input is nil")
	}
	if len(x.Data) != tensor.Size(x.Shape) {
		return nil, fmt.Errorf("eval plain: input shape %v holds %d values, got %d", x.Shape, tensor.Size(x.Shape), len(x.Data))
	}
	batch := 1
	if len(p.Input.Shape) > 0 && p.Input.Shape[0] == -1 && len(x.Shape) > 0 {
		batch = x.Shape[0]
	}
	shapes, err := p.Shapes(batch)
	if err != nil {
		return nil, fmt.Errorf("eval plain: %w", err)
	}
	if !slices.Equal(x.Shape, shapes[p.Input.Name]) {
		return nil, fmt.Errorf("eval plain: input shape %v does not match the plan's input shape %v", x.Shape, p.Input.Shape)
	}
	if err := CheckWeights(p, w); err != nil {
		return nil, fmt.Errorf("eval plain: %w", err)
	}
	vals := make(map[string]*tensor.Dense[float64], len(shapes))
	vals[p.Input.Name] = x
	for name, t := range w {
		vals[name] = t
	}
	for i := range p.Nodes {
		n := &p.Nodes[i]
		ins := make([]*tensor.Dense[float64], len(n.Inputs))
		for j, name := range n.Inputs {
			ins[j] = vals[name]
		}
		out := tensor.New[float64](shapes[n.Output]...)
		evalNode(n, ins, out)
		for _, v := range out.Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("eval plain: %w", &NodeError{Index: i, Name: n.Name, Op: n.Op,
					Err: errors.New("produced a non-finite value")})
			}
		}
		vals[n.Output] = out
	}
	y := vals[p.Output]
	if p.Final != nil {
		y = y.Clone()
		if err := p.Finish(y); err != nil {
			return nil, fmt.Errorf("eval plain: %w", err)
		}
	}
	return y, nil
}

// CheckWeights checks that w holds exactly the plan's weights, each with its
// declared shape, finite values and consistent data length.
func CheckWeights(p *Plan, w Weights) error {
	declared := make(map[string]bool, len(p.Weights))
	for _, v := range p.Weights {
		declared[v.Name] = true
		t, ok := w[v.Name]
		if !ok || t == nil {
			return fmt.Errorf("weight %q is missing", v.Name)
		}
		if !slices.Equal(t.Shape, v.Shape) {
			return fmt.Errorf("weight %q has shape %v, the plan declares %v", v.Name, t.Shape, v.Shape)
		}
		if len(t.Data) != tensor.Size(t.Shape) {
			return fmt.Errorf("weight %q: shape %v holds %d values, got %d", v.Name, t.Shape, tensor.Size(t.Shape), len(t.Data))
		}
		for _, x := range t.Data {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("weight %q holds a non-finite value %v", v.Name, x)
			}
		}
	}
	var extra []string
	for name := range w {
		if !declared[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("weights %q are not declared by the plan", extra)
	}
	return nil
}

// evalNode computes node n into out, whose shape Shapes has inferred.
func evalNode(n *Node, ins []*tensor.Dense[float64], out *tensor.Dense[float64]) {
	a := &n.Attrs
	switch n.Op {
	case MatMul:
		evalMatMul(ins, out)
	case Conv:
		evalConv(ins, a, out)
	case Add:
		broadcastApply(ins[0], ins[1], out, func(x, y float64) float64 { return x + y })
	case Sub:
		broadcastApply(ins[0], ins[1], out, func(x, y float64) float64 { return x - y })
	case Mul:
		broadcastApply(ins[0], ins[1], out, func(x, y float64) float64 { return x * y })
	case MulConst:
		c := &tensor.Dense[float64]{Shape: a.Const.Shape, Data: a.Const.Data}
		broadcastApply(ins[0], c, out, func(x, y float64) float64 { return x * y })
	case Relu:
		for i, v := range ins[0].Data {
			out.Data[i] = math.Max(v, 0)
		}
	case MaxPool, AveragePool:
		evalPool(n.Op, ins[0], a, out)
	case GlobalAveragePool:
		x := ins[0]
		hw := x.Shape[2] * x.Shape[3]
		for nc := 0; nc < x.Shape[0]*x.Shape[1]; nc++ {
			s := 0.0
			for i := 0; i < hw; i++ {
				s += x.Data[nc*hw+i]
			}
			out.Data[nc] = s / float64(hw)
		}
	case Pad:
		evalPad(ins[0], a, out)
	case Flatten, Reshape, Identity:
		copy(out.Data, ins[0].Data)
	case Concat:
		evalConcat(ins, a.Axis, out)
	case Transpose, Slice, Gather:
		evalMove(n, ins[0], out)
	case ReduceSum:
		evalReduceSum(ins[0], a, out)
	case Clip, LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid, SiLU:
		var slope func(i int) float64
		if n.Op == PRelu {
			c := &tensor.Dense[float64]{Shape: a.Const.Shape, Data: a.Const.Data}
			slopes := tensor.New[float64](out.Shape...)
			broadcastApply(slopes, c, slopes, func(_, y float64) float64 { return y })
			slope = func(i int) float64 { return slopes.Data[i] }
		}
		evalPiecewiseExact(n, ins[0].Data, out.Data, slope)
	}
}

// unravel writes the coordinates of flat index i in shape into idx.
func unravel(i int, shape, idx []int) {
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
}

// ravel is the flat index of coordinates idx in shape.
func ravel(idx, shape []int) int {
	o := 0
	for d, n := range shape {
		o = o*n + idx[d]
	}
	return o
}

// evalConcat finds, for every output element, the input holding it.
func evalConcat(ins []*tensor.Dense[float64], axis int, out *tensor.Dense[float64]) {
	idx := make([]int, len(out.Shape))
	for i := range out.Data {
		unravel(i, out.Shape, idx)
		pos := idx[axis]
		for _, x := range ins {
			if pos < x.Shape[axis] {
				j := slices.Clone(idx)
				j[axis] = pos
				out.Data[i] = x.Data[ravel(j, x.Shape)]
				break
			}
			pos -= x.Shape[axis]
		}
	}
}

// evalMove computes Transpose, Slice and Gather: for every output
// element, the coordinates of the input element it copies.
func evalMove(n *Node, x *tensor.Dense[float64], out *tensor.Dense[float64]) {
	a := &n.Attrs
	oi := make([]int, len(out.Shape))
	xi := make([]int, len(x.Shape))
	start, step, _, _ := SliceGeometry(x.Shape, a)
	for i := range out.Data {
		unravel(i, out.Shape, oi)
		switch n.Op {
		case Transpose:
			for d, p := range a.Perm {
				xi[p] = oi[d]
			}
		case Slice:
			for d := range xi {
				xi[d] = start[d] + oi[d]*step[d]
			}
		case Gather:
			k := len(a.IndexShape)
			copy(xi, oi[:a.Axis])
			xi[a.Axis] = a.Indices[ravel(oi[a.Axis:a.Axis+k], a.IndexShape)]
			copy(xi[a.Axis+1:], oi[a.Axis+k:])
		}
		out.Data[i] = x.Data[ravel(xi, x.Shape)]
	}
}

// evalReduceSum adds every input element to its output position.
func evalReduceSum(x *tensor.Dense[float64], a *Attrs, out *tensor.Dense[float64]) {
	red := make([]bool, len(x.Shape))
	for _, ax := range a.Axes {
		red[ax] = true
	}
	xi := make([]int, len(x.Shape))
	for i, v := range x.Data {
		unravel(i, x.Shape, xi)
		o := 0
		for d, c := range xi {
			if !red[d] {
				o = o*x.Shape[d] + c
			}
		}
		out.Data[o] += v
	}
}

// evalMatMul is numpy's matmul, by its definition: 1-D operands promoted,
// batch dimensions broadcast, then a sum over k for every output element.
func evalMatMul(ins []*tensor.Dense[float64], out *tensor.Dense[float64]) {
	a, b := ins[0], ins[1]
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	batch, _ := Broadcast(as[:len(as)-2], bs[:len(bs)-2])
	idx := make([]int, len(batch))
	for bi := range sizeOf(batch) {
		rem := bi
		for d := len(batch) - 1; d >= 0; d-- {
			idx[d] = rem % batch[d]
			rem /= batch[d]
		}
		ao := offset(as[:len(as)-2], idx) * m * k
		bo := offset(bs[:len(bs)-2], idx) * k * n
		for i := range m {
			for j := range n {
				s := 0.0
				for p := range k {
					s += a.Data[ao+i*k+p] * b.Data[bo+p*n+j]
				}
				out.Data[(bi*m+i)*n+j] = s
			}
		}
	}
	if len(ins) == 3 { // along the output's last dimension
		bias := ins[2].Data
		for i := range out.Data {
			out.Data[i] += bias[i%len(bias)]
		}
	}
}

func evalConv(ins []*tensor.Dense[float64], a *Attrs, out *tensor.Dense[float64]) {
	x, w := ins[0], ins[1]
	strides, pads, dil := a.Spatial()
	N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	M, Cg, KH, KW := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	OH, OW := out.Shape[2], out.Shape[3]
	Mg := M / a.Groups()
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			g := m / Mg
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					s := 0.0
					if len(ins) == 3 {
						s = ins[2].Data[m]
					}
					for c := 0; c < Cg; c++ {
						ic := g*Cg + c
						for kh := 0; kh < KH; kh++ {
							ih := oh*strides[0] - pads[0] + kh*dil[0]
							if ih < 0 || ih >= H {
								continue
							}
							for kw := 0; kw < KW; kw++ {
								iw := ow*strides[1] - pads[1] + kw*dil[1]
								if iw < 0 || iw >= W {
									continue
								}
								s += x.Data[((n*C+ic)*H+ih)*W+iw] * w.Data[((m*Cg+c)*KH+kh)*KW+kw]
							}
						}
					}
					out.Data[((n*M+m)*OH+oh)*OW+ow] = s
				}
			}
		}
	}
}

// evalPool follows PyTorch: padding never wins a max; an average divides by
// the window's positions inside the input, or with CountIncludePad inside the
// padded input (positions past the end padding, possible in ceil mode, never
// count).
func evalPool(op Op, x *tensor.Dense[float64], a *Attrs, out *tensor.Dense[float64]) {
	strides, pads, dil := a.Spatial()
	NC, H, W := x.Shape[0]*x.Shape[1], x.Shape[2], x.Shape[3]
	OH, OW := out.Shape[2], out.Shape[3]
	KH, KW := a.Kernel[0], a.Kernel[1]
	for nc := 0; nc < NC; nc++ {
		for oh := 0; oh < OH; oh++ {
			for ow := 0; ow < OW; ow++ {
				best, sum, cnt, padded := math.Inf(-1), 0.0, 0, 0
				for kh := 0; kh < KH; kh++ {
					ih := oh*strides[0] - pads[0] + kh*dil[0]
					for kw := 0; kw < KW; kw++ {
						iw := ow*strides[1] - pads[1] + kw*dil[1]
						if ih < H+pads[2] && iw < W+pads[3] {
							padded++
						}
						if ih < 0 || ih >= H || iw < 0 || iw >= W {
							continue
						}
						v := x.Data[(nc*H+ih)*W+iw]
						best = math.Max(best, v)
						sum += v
						cnt++
					}
				}
				o := &out.Data[(nc*OH+oh)*OW+ow]
				switch {
				case op == MaxPool:
					*o = best
				case a.CountIncludePad:
					*o = sum / float64(padded)
				default:
					*o = sum / float64(cnt)
				}
			}
		}
	}
}

func evalPad(x *tensor.Dense[float64], a *Attrs, out *tensor.Dense[float64]) {
	r := len(x.Shape)
	for i := range out.Data {
		out.Data[i] = a.Value
	}
	idx := make([]int, r)
	for i, v := range x.Data {
		// unravel i in x, shift by the begin pads, ravel in out
		rem := i
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % x.Shape[d]
			rem /= x.Shape[d]
		}
		o := 0
		for d := 0; d < r; d++ {
			o = o*out.Shape[d] + idx[d] + a.Pads[d]
		}
		out.Data[o] = v
	}
}

// broadcastApply sets out = f(x, y) elementwise with numpy broadcasting; out
// has the broadcast shape.
func broadcastApply(x, y, out *tensor.Dense[float64], f func(x, y float64) float64) {
	r := len(out.Shape)
	idx := make([]int, r)
	for i := range out.Data {
		rem := i
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % out.Shape[d]
			rem /= out.Shape[d]
		}
		out.Data[i] = f(x.Data[offset(x.Shape, idx)], y.Data[offset(y.Shape, idx)])
	}
}

// offset is the flat index in a tensor of the given shape, right-aligned
// against the output index idx, of the broadcast element.
func offset(shape, idx []int) int {
	o := 0
	skip := len(idx) - len(shape)
	for d, n := range shape {
		i := idx[skip+d]
		if n == 1 {
			i = 0
		}
		o = o*n + i
	}
	return o
}
