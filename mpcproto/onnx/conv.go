package onnx

import (
	"errors"
	"fmt"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the ops over NCHW images: Conv, MaxPool, AveragePool and
// GlobalAveragePool.

// window reads the attributes shared by Conv and the pools and resolves
// auto_pad against the input's spatial shape.
func (c *nodeConv) window(x *act, kernel []int) (plan.Attrs, error) {
	m := c.attrs
	var a plan.Attrs
	var err error
	get := func(name string, def []int) ([]int, error) {
		v, ok, err := m.ints(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return def, nil
		}
		if len(v) != len(def) {
			return nil, fmt.Errorf("%s must have %d values, got %d", name, len(def), len(v))
		}
		return v, nil
	}
	if a.Strides, err = get("strides", []int{1, 1}); err != nil {
		return a, err
	}
	if a.Dilations, err = get("dilations", []int{1, 1}); err != nil {
		return a, err
	}
	if a.Pads, err = get("pads", []int{0, 0, 0, 0}); err != nil {
		return a, err
	}
	autoPad, err := m.str("auto_pad", "NOTSET")
	if err != nil {
		return a, err
	}
	switch autoPad {
	case "NOTSET", "":
	case "VALID":
		a.Pads = []int{0, 0, 0, 0}
	case "SAME_UPPER", "SAME_LOWER":
		for i := 0; i < 2; i++ {
			in, s := x.shape[0][2+i], a.Strides[i]
			if s <= 0 {
				return a, fmt.Errorf("strides %v must be positive", a.Strides)
			}
			ext := a.Dilations[i]*(kernel[i]-1) + 1
			total := max(((in+s-1)/s-1)*s+ext-in, 0)
			lo := total / 2
			if autoPad == "SAME_LOWER" {
				lo = total - total/2
			}
			a.Pads[i], a.Pads[2+i] = lo, total-lo
		}
	default:
		return a, fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
	return a, nil
}

// image is data for an op over NCHW images: it refuses an input of
// another rank with the reason refusal.
func (c *nodeConv) image(lo, hi int, refusal string) (*act, error) {
	x, err := c.data(lo, hi)
	if err != nil {
		return nil, err
	}
	if len(x.shape[0]) != 4 {
		return nil, fmt.Errorf("input shape %v: %s", x.shape[0], refusal)
	}
	return x, nil
}

func (c *nodeConv) conv() error {
	if x, err := c.data(2, 3); err == nil && len(x.shape[0]) == 3 {
		return c.conv1d(x)
	}
	x, err := c.image(2, 3, "only 1-D (NCL) and 2-D (NCHW) convolutions are supported")
	if err != nil {
		return err
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	if len(w.shape) != 4 {
		return fmt.Errorf("weight shape %v: want rank 4", w.shape)
	}
	if k, ok, err := c.attrs.ints("kernel_shape"); err != nil {
		return err
	} else if ok && (len(k) != 2 || k[0] != w.shape[2] || k[1] != w.shape[3]) {
		return fmt.Errorf("kernel_shape %v does not match weight shape %v", k, w.shape)
	}
	a, err := c.window(x, w.shape[2:])
	if err != nil {
		return err
	}
	group, err := c.attrs.int("group", 1)
	if err != nil {
		return err
	}
	if group < 1 {
		return fmt.Errorf("group %d must be positive", group)
	}
	a.Group = group
	return c.emitWeighted(plan.Conv, x, w, "bias", nil, a)
}

func (c *nodeConv) pool() error {
	op := c.n.GetOpType()
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if len(x.shape[0]) != 4 {
		return fmt.Errorf("input shape %v: only 2-D pooling (NCHW) is supported", x.shape[0])
	}
	kernel, ok, err := c.attrs.ints("kernel_shape")
	if err != nil {
		return err
	}
	if !ok || len(kernel) != 2 {
		return fmt.Errorf("kernel_shape must have 2 values, got %v", kernel)
	}
	a, err := c.window(x, kernel)
	if err != nil {
		return err
	}
	a.Kernel = kernel
	ceil, err := c.attrs.int("ceil_mode", 0)
	if err != nil {
		return err
	}
	a.CeilMode = ceil != 0
	if op == "MaxPool" {
		if so, err := c.attrs.int("storage_order", 0); err != nil || so != 0 {
			if err == nil {
				err = errors.New("storage_order 1 is not supported")
			}
			return err
		}
		return c.emit(plan.MaxPool, []string{x.name}, a)
	}
	cip, err := c.attrs.int("count_include_pad", 0)
	if err != nil {
		return err
	}
	a.CountIncludePad = cip != 0
	return c.emit(plan.AveragePool, []string{x.name}, a)
}

func (c *nodeConv) gap() error {
	x, err := c.image(1, 1, "only NCHW inputs are supported")
	if err != nil {
		return err
	}
	return c.emit(plan.GlobalAveragePool, []string{x.name}, plan.Attrs{})
}

// conv1d converts a 1-D convolution (x [N, C, L], w [M, C/group, K]) into
// a 2-D one over [N, C, 1, L] with the kernel [M, C/group, 1, K], between
// two Reshapes.
func (c *nodeConv) conv1d(x *act) error {
	if err := c.only("strides", "pads", "dilations", "kernel_shape", "group", "auto_pad"); err != nil {
		return err
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	if len(w.shape) != 3 {
		return fmt.Errorf("weight shape %v: want rank 3 for a 1-D convolution", w.shape)
	}
	a, err := c.conv1dAttrs(x, w)
	if err != nil {
		return err
	}
	return c.emitConv1d(x, w, a)
}

// conv1dAttrs reads the attributes of a 1-D convolution of x by the
// weight w and returns them as those of the equivalent 2-D convolution
// over [N, C, 1, L].
func (c *nodeConv) conv1dAttrs(x *act, w *ctensor) (plan.Attrs, error) {
	k, err := c.conv1dInts("kernel_shape", []int{w.shape[2]})
	if err != nil {
		return plan.Attrs{}, err
	}
	if k[0] != w.shape[2] {
		return plan.Attrs{}, fmt.Errorf("kernel_shape %v does not match weight shape %v", k, w.shape)
	}
	st, err := c.conv1dInts("strides", []int{1})
	if err != nil {
		return plan.Attrs{}, err
	}
	dil, err := c.conv1dInts("dilations", []int{1})
	if err != nil {
		return plan.Attrs{}, err
	}
	pads, err := c.conv1dInts("pads", []int{0, 0})
	if err != nil {
		return plan.Attrs{}, err
	}
	if pads, err = c.conv1dAutoPad(pads, x.shape[0][2], st, dil[0], w.shape[2]); err != nil {
		return plan.Attrs{}, err
	}
	group, err := c.attrs.int("group", 1)
	if err != nil {
		return plan.Attrs{}, err
	}
	if group < 1 {
		return plan.Attrs{}, fmt.Errorf("group %d must be positive", group)
	}
	return plan.Attrs{Strides: []int{1, st[0]}, Pads: []int{0, pads[0], 0, pads[1]}, Dilations: []int{1, dil[0]}, Group: group}, nil
}

// conv1dInts is the integer attribute name of a 1-D convolution, def when
// it is absent; it must have as many values as def.
func (c *nodeConv) conv1dInts(name string, def []int) ([]int, error) {
	v, ok, err := c.attrs.ints(name)
	if err != nil || !ok {
		return def, err
	}
	if len(v) != len(def) {
		return nil, fmt.Errorf("%s must have %d values for a 1-D convolution, got %d", name, len(def), len(v))
	}
	return v, nil
}

// conv1dAutoPad applies the auto_pad attribute to the pads of a 1-D
// convolution over an input of length in, with the strides st, the
// dilation dil and a kernel of length k.
func (c *nodeConv) conv1dAutoPad(pads []int, in int, st []int, dil, k int) ([]int, error) {
	autoPad, err := c.attrs.str("auto_pad", "NOTSET")
	if err != nil {
		return nil, err
	}
	switch autoPad {
	case "NOTSET", "":
		return pads, nil
	case "VALID":
		return []int{0, 0}, nil
	case "SAME_UPPER", "SAME_LOWER":
		s := st[0]
		if s <= 0 {
			return nil, fmt.Errorf("strides %v must be positive", st)
		}
		ext := dil*(k-1) + 1
		total := max(((in+s-1)/s-1)*s+ext-in, 0)
		lo := total / 2
		if autoPad == "SAME_LOWER" {
			lo = total - total/2
		}
		return []int{lo, total - lo}, nil
	default:
		return nil, fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
}

// emitConv1d emits the 2-D convolution of a 1-D one (attributes a): the
// Reshape of x to [N, C, 1, L], the Conv by the weight w as [M, C/group,
// 1, K] (and the bias), and the Reshape of its result back to [N, M, L].
func (c *nodeConv) emitConv1d(x *act, w *ctensor, a plan.Attrs) error {
	var target [2][]int
	for b := 0; b < 2; b++ {
		s := x.shape[b]
		target[b] = []int{s[0], s[1], 1, s[2]}
	}
	x4, err := c.im.reshapeTo(c.name+"/2d", x, target, c.out()+"/2d")
	if err != nil {
		return err
	}
	w4 := &ctensor{shape: []int{w.shape[0], w.shape[1], 1, w.shape[2]}, data: w.data}
	wn, err := c.im.weight(c.in[1], w4)
	if err != nil {
		return err
	}
	inputs := []string{x4.name, wn}
	b, err := c.optConst(2, "bias")
	if err != nil {
		return err
	}
	if b != nil {
		bn, err := c.im.weight(c.in[2], b)
		if err != nil {
			return err
		}
		inputs = append(inputs, bn)
	}
	y, err := c.im.emit(c.name, plan.Conv, inputs, a, c.out()+"/conv")
	if err != nil {
		return err
	}
	for b := 0; b < 2; b++ {
		s := y.shape[b]
		target[b] = []int{s[0], s[1], s[3]}
	}
	res, err := c.im.reshapeTo(c.name+"/1d", y, target, c.out())
	if err != nil {
		return err
	}
	c.set(res)
	return nil
}
