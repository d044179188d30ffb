package onnx

import (
	"errors"
	"fmt"
)

// This file holds the folders of the ops the importer only evaluates over
// constants: Constant, ConstantOfShape, Shape, Gather, Concat, Slice and
// Transpose. Their kernels are in fold.go.

func (c *nodeConv) evalConstant([]*ctensor, int) (*ctensor, error) {
	return constantValue(c.attrs)
}

func (c *nodeConv) evalConstantOfShape(ins []*ctensor, _ int) (*ctensor, error) {
	shape, err := ins[0].ints()
	if err != nil {
		return nil, fmt.Errorf("shape: %w", err)
	}
	val := &ctensor{shape: []int{1}, data: []float64{0}}
	if a, ok := c.attrs["value"]; ok {
		if val, err = readTensor(a.GetT()); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		if len(val.data) != 1 {
			return nil, errors.New("value must hold one element")
		}
	}
	out, err := newC(shape, val.isInt)
	if err != nil {
		return nil, err
	}
	for i := range out.data {
		out.data[i] = val.data[0]
	}
	return out, nil
}

// evalShape is Shape of a constant or of an activation's shape under binding b.
func (c *nodeConv) evalShape(ins []*ctensor, b int) (*ctensor, error) {
	var shape []int
	if ins[0] != nil {
		shape = ins[0].shape
	} else {
		shape = c.im.acts[c.in[0]].shape[b]
	}
	r := len(shape)
	start, err := c.attrs.int("start", 0)
	if err != nil {
		return nil, err
	}
	end, err := c.attrs.int("end", r)
	if err != nil {
		return nil, err
	}
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	if end < start {
		end = start
	}
	return intsC(shape[start:end]), nil
}

func (c *nodeConv) evalGather(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 0)
	if err != nil {
		return nil, err
	}
	return foldGather(ins[0], ins[1], axis)
}

func (c *nodeConv) evalConcat(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 0)
	if err != nil {
		return nil, err
	}
	var parts []*ctensor
	for _, x := range ins {
		if x != nil {
			parts = append(parts, x)
		}
	}
	return foldConcat(parts, axis)
}

// evalSlice folds Slice: starts, ends and axes are attributes before opset
// 10, inputs (with steps) since.
func (c *nodeConv) evalSlice(ins []*ctensor, _ int) (*ctensor, error) {
	var lists [4][]int // starts, ends, axes, steps
	if c.im.opset < 10 {
		for i, name := range []string{"starts", "ends", "axes"} {
			var err error
			if lists[i], _, err = c.attrs.ints(name); err != nil {
				return nil, err
			}
		}
	} else {
		if err := c.need(ins, 3); err != nil {
			return nil, err
		}
		for i := 1; i < len(ins) && i < 5; i++ {
			if ins[i] == nil {
				continue
			}
			v, err := ins[i].ints()
			if err != nil {
				return nil, fmt.Errorf("slice input %d: %w", i, err)
			}
			lists[i-1] = v
		}
	}
	return foldSlice(ins[0], lists[0], lists[1], lists[2], lists[3])
}

func (c *nodeConv) evalTranspose(ins []*ctensor, _ int) (*ctensor, error) {
	perm, _, err := c.attrs.ints("perm")
	if err != nil {
		return nil, err
	}
	return foldTranspose(ins[0], perm)
}
