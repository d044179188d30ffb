package tensor

import (
	"fmt"
	"slices"
)

// Index maps that move elements without computing on them (transpose,
// slice, gather along an axis, concatenation) and a sum over axes: local
// operations on secret shares, since each output element is one input
// element (or a sum of them). Like the maps of index.go, they depend on
// shapes only.

// Strides is the row-major stride of every axis of shape.
func Strides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// TransposeIndex is the index map of a transpose of a tensor of the given
// shape by perm (output axis i is input axis perm[i]); it returns the
// output shape and the map.
func TransposeIndex(shape, perm []int) ([]int, []int, error) {
	r := len(shape)
	if len(perm) != r {
		return nil, nil, fmt.Errorf("tensor: transpose of a %d-D tensor by perm %v", r, perm)
	}
	seen := make([]bool, r)
	out := make([]int, r)
	for i, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, nil, fmt.Errorf("tensor: perm %v is not a permutation of %d axes", perm, r)
		}
		seen[p] = true
		out[i] = shape[p]
	}
	st := Strides(shape)
	ost := make([]int, r) // input stride of each output axis
	for i, p := range perm {
		ost[i] = st[p]
	}
	return out, walkIndex(out, ost, 0), nil
}

// walkIndex lists, for every element of a tensor of shape out in row-major
// order, base plus the sum over axes of its coordinate times stride[axis].
func walkIndex(out, stride []int, base int) []int {
	idx := make([]int, Size(out))
	if len(idx) == 0 {
		return idx
	}
	counter := make([]int, len(out))
	cur := base
	for i := range idx {
		idx[i] = cur
		for ax := len(out) - 1; ax >= 0; ax-- {
			counter[ax]++
			cur += stride[ax]
			if counter[ax] < out[ax] {
				break
			}
			cur -= stride[ax] * counter[ax]
			counter[ax] = 0
		}
	}
	return idx
}

// SliceIndex is the index map of a strided slice: along each axis a, the
// count[a] elements start[a], start[a] + step[a], ... (step may be
// negative; every element must lie inside the axis). It returns the
// output shape (count) and the map.
func SliceIndex(shape, start, step, count []int) ([]int, error) {
	r := len(shape)
	if len(start) != r || len(step) != r || len(count) != r {
		return nil, fmt.Errorf("tensor: slice of a %d-D tensor with %d starts, %d steps, %d counts", r, len(start), len(step), len(count))
	}
	st := Strides(shape)
	base := 0
	ost := make([]int, r)
	for a := range r {
		if count[a] < 0 || step[a] == 0 {
			return nil, fmt.Errorf("tensor: slice axis %d: count %d, step %d", a, count[a], step[a])
		}
		if count[a] > 0 {
			last := start[a] + (count[a]-1)*step[a]
			if start[a] < 0 || start[a] >= shape[a] || last < 0 || last >= shape[a] {
				return nil, fmt.Errorf("tensor: slice axis %d of length %d: %d elements from %d by %d leave it",
					a, shape[a], count[a], start[a], step[a])
			}
		}
		base += start[a] * st[a]
		ost[a] = step[a] * st[a]
	}
	return walkIndex(count, ost, base), nil
}

// GatherIndex is the index map of ONNX Gather along axis with the given
// (non-negative) indices of shape ishape: the output shape is
// shape[:axis] + ishape + shape[axis+1:].
func GatherIndex(shape []int, axis int, indices, ishape []int) ([]int, []int, error) {
	if axis < 0 || axis >= len(shape) {
		return nil, nil, fmt.Errorf("tensor: gather axis %d of a %d-D tensor", axis, len(shape))
	}
	if Size(ishape) != len(indices) {
		return nil, nil, fmt.Errorf("tensor: gather indices of shape %v hold %d values", ishape, len(indices))
	}
	for _, i := range indices {
		if i < 0 || i >= shape[axis] {
			return nil, nil, fmt.Errorf("tensor: gather index %d out of range for axis %d of length %d", i, axis, shape[axis])
		}
	}
	out := append(append(slices.Clone(shape[:axis]), ishape...), shape[axis+1:]...)
	outer, inner := Size(shape[:axis]), Size(shape[axis+1:])
	idx := make([]int, 0, Size(out))
	for o := range outer {
		for _, i := range indices {
			base := (o*shape[axis] + i) * inner
			for j := range inner {
				idx = append(idx, base+j)
			}
		}
	}
	return out, idx, nil
}

// Concat concatenates tensors of one rank along axis; every other
// dimension must agree.
func Concat[T Number](ts []*Dense[T], axis int) (*Dense[T], error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("tensor: concat of no tensors")
	}
	r := len(ts[0].Shape)
	if axis < 0 || axis >= r {
		return nil, fmt.Errorf("tensor: concat axis %d of %d-D tensors", axis, r)
	}
	out := slices.Clone(ts[0].Shape)
	out[axis] = 0
	for _, t := range ts {
		if len(t.Shape) != r {
			return nil, fmt.Errorf("tensor: concat of shapes %v and %v", ts[0].Shape, t.Shape)
		}
		for a, d := range t.Shape {
			if a != axis && d != ts[0].Shape[a] {
				return nil, fmt.Errorf("tensor: concat of shapes %v and %v along axis %d", ts[0].Shape, t.Shape, axis)
			}
		}
		out[axis] += t.Shape[axis]
	}
	outer, inner := Size(out[:axis]), Size(out[axis+1:])
	res := New[T](out...)
	off := 0
	for o := range outer {
		for _, t := range ts {
			n := t.Shape[axis] * inner
			copy(res.Data[off:off+n], t.Data[o*n:(o+1)*n])
			off += n
		}
	}
	return res, nil
}

// ReduceSum sums t over the given axes (distinct, in range); keepDims
// keeps them as dimensions of 1.
func ReduceSum[T Number](t *Dense[T], axes []int, keepDims bool) (*Dense[T], error) {
	r := len(t.Shape)
	red := make([]bool, r)
	for _, a := range axes {
		if a < 0 || a >= r || red[a] {
			return nil, fmt.Errorf("tensor: reduce axes %v of a %d-D tensor", axes, r)
		}
		red[a] = true
	}
	kept := make([]int, r) // the output shape with reduced axes as 1
	var out []int
	for a, d := range t.Shape {
		kept[a] = d
		if red[a] {
			kept[a] = 1
			if keepDims {
				out = append(out, 1)
			}
			continue
		}
		out = append(out, d)
	}
	st := Strides(kept)
	ost := make([]int, r) // output stride of each input axis
	for a := range r {
		if !red[a] {
			ost[a] = st[a]
		}
	}
	res := New[T](out...)
	for i, o := range walkIndex(t.Shape, ost, 0) {
		res.Data[o] += t.Data[i]
	}
	return res, nil
}
