package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the ops that move or relabel data without computing on
// it: Identity, Dropout, Cast, Flatten, Reshape, Squeeze, Unsqueeze and Pad.

func (c *nodeConv) alias() error {
	a, err := c.data(1, 1)
	if err != nil {
		return err
	}
	c.aliasTo(0, a)
	return nil
}

func (c *nodeConv) evalIdentity(ins []*ctensor, _ int) (*ctensor, error) {
	return ins[0], nil
}

func (c *nodeConv) dropout() error {
	if err := c.inputCount(1, 3); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	if t, err := c.optConst(2, "training_mode"); err != nil {
		return err
	} else if t != nil && len(t.data) == 1 && t.data[0] != 0 {
		return errors.New("dropout in training mode is not supported (export the model in eval mode)")
	}
	a, err := c.act(0)
	if err != nil {
		return err
	}
	c.aliasTo(0, a)
	return nil
}

func (c *nodeConv) cast() error {
	to, err := c.attrs.int("to", 0)
	if err != nil {
		return err
	}
	if to != dtFloat && to != dtDouble {
		return fmt.Errorf("cast of the model's data to %s is not supported", pb.TensorProto_DataType(to))
	}
	return c.alias()
}

func (c *nodeConv) evalCast(ins []*ctensor, _ int) (*ctensor, error) {
	to, err := c.attrs.int("to", 0)
	if err != nil {
		return nil, err
	}
	return foldCast(ins[0], int64(to))
}

func (c *nodeConv) flatten() error {
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	axis, err := c.attrs.int("axis", 1)
	if err != nil {
		return err
	}
	return c.emit(plan.Flatten, []string{x.name}, plan.Attrs{Axis: axis})
}

func (c *nodeConv) evalFlatten(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 1)
	if err != nil {
		return nil, err
	}
	r := len(ins[0].shape)
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis > r {
		return nil, fmt.Errorf("axis out of range for rank %d", r)
	}
	return &ctensor{shape: []int{sizeOf(ins[0].shape[:axis]), sizeOf(ins[0].shape[axis:])}, data: ins[0].data, isInt: ins[0].isInt}, nil
}

func (c *nodeConv) reshape() error {
	x, err := c.data(2, 2)
	if err != nil {
		return err
	}
	k, _ := c.input(1)
	if k == nil {
		return errors.New("shape must be a constant (or fold to one), it depends on the model's input")
	}
	allowZero, err := c.attrs.int("allowzero", 0)
	if err != nil {
		return err
	}
	var target [2][]int
	for b := 0; b < 2; b++ {
		t, err := k[b].ints()
		if err != nil {
			return fmt.Errorf("shape: %w", err)
		}
		if c.im.fromOne && len(t) > 0 && t[0] == 1 && x.shape[b][0] == c.im.batch[b] {
			t[0] = c.im.batch[b] // a batch of 1 fixed at export
		}
		if target[b], err = reshapeTarget(x.shape[b], t, allowZero != 0); err != nil {
			return err
		}
	}
	return c.reshapeOut(x, target)
}

func (c *nodeConv) evalReshape(ins []*ctensor, _ int) (*ctensor, error) {
	target, err := ins[1].ints()
	if err != nil {
		return nil, fmt.Errorf("shape: %w", err)
	}
	allowZero, err := c.attrs.int("allowzero", 0)
	if err != nil {
		return nil, err
	}
	shape, err := reshapeTarget(ins[0].shape, target, allowZero != 0)
	if err != nil {
		return nil, err
	}
	return &ctensor{shape: shape, data: ins[0].data, isInt: ins[0].isInt}, nil
}

func (c *nodeConv) squeeze() error {
	op := c.n.GetOpType()
	x, err := c.data(1, 2)
	if err != nil {
		return err
	}
	if _, a := c.input(1); a != nil {
		return errors.New("axes must be a constant, they depend on the model's input")
	}
	var ins []*ctensor
	for i := range c.in {
		k, _ := c.input(i)
		if k != nil {
			if !k[0].equal(k[1]) {
				return errors.New("axes depend on the batch size")
			}
			ins = append(ins, k[0])
		} else {
			ins = append(ins, nil)
		}
	}
	axes, have, err := c.axes(ins)
	if err != nil {
		return err
	}
	var target [2][]int
	for b := 0; b < 2; b++ {
		if op == "Unsqueeze" {
			if !have {
				return errors.New("axes are missing")
			}
			target[b], err = unsqueezeShape(x.shape[b], axes)
		} else {
			target[b], err = squeezeShape(x.shape[b], axes, have)
		}
		if err != nil {
			return err
		}
	}
	return c.reshapeOut(x, target)
}

// evalSqueeze folds Squeeze and Unsqueeze.
func (c *nodeConv) evalSqueeze(ins []*ctensor, _ int) (*ctensor, error) {
	axes, have, err := c.axes(ins)
	if err != nil {
		return nil, err
	}
	if c.n.GetOpType() == "Unsqueeze" {
		if !have {
			return nil, errors.New("axes are missing")
		}
		return foldUnsqueeze(ins[0], axes)
	}
	shape, err := squeezeShape(ins[0].shape, axes, have)
	if err != nil {
		return nil, err
	}
	return &ctensor{shape: shape, data: ins[0].data, isInt: ins[0].isInt}, nil
}

// axes reads Squeeze/Unsqueeze's axes: an attribute before opset 13, the
// second input since.
func (c *nodeConv) axes(ins []*ctensor) ([]int, bool, error) {
	if c.im.opset < 13 {
		return c.attrs.ints("axes")
	}
	if len(ins) < 2 || ins[1] == nil {
		return nil, false, nil
	}
	v, err := ins[1].ints()
	if err != nil {
		return nil, false, fmt.Errorf("axes: %w", err)
	}
	return v, true, nil
}

// reshapeOut makes the node's output x reshaped to target[b] under each
// probe binding: x itself when the shape does not change, else a Reshape.
func (c *nodeConv) reshapeOut(x *act, target [2][]int) error {
	res, err := c.im.reshapeTo(c.name, x, target, c.out())
	if err != nil {
		return err
	}
	if res == x {
		c.aliasTo(0, x)
	} else {
		c.set(res)
	}
	return nil
}

// reshapeTo emits a Reshape of x whose output has shape target[b] under each
// probe binding; elements that follow the batch are written as 0 (copy the
// input's dimension) or -1 (inferred).
func (im *importer) reshapeTo(nodeName string, x *act, target [2][]int, out string) (*act, error) {
	if len(target[0]) != len(target[1]) {
		return nil, fmt.Errorf("output rank depends on the batch size (%v and %v)", target[0], target[1])
	}
	shape := make([]int, len(target[0]))
	inferred := false
	for i := range shape {
		t0, t1 := target[0][i], target[1][i]
		switch {
		case t0 == t1 && !(i < len(x.shape[0]) && x.shape[0][i] != x.shape[1][i] && t0 == x.shape[0][i]):
			shape[i] = t0
		case i < len(x.shape[0]) && t0 == x.shape[0][i] && t1 == x.shape[1][i]:
			shape[i] = 0
		case !inferred:
			shape[i] = -1
			inferred = true
		default:
			return nil, fmt.Errorf("reshape to %v (batch %d) and %v (batch %d) depends on the batch size in a way a plan cannot express",
				target[0], im.batch[0], target[1], im.batch[1])
		}
	}
	if slices.Equal(x.shape[0], target[0]) && slices.Equal(x.shape[1], target[1]) {
		return x, nil
	}
	res, err := im.emit(nodeName, plan.Reshape, []string{x.name}, plan.Attrs{Shape: shape}, out)
	if err != nil {
		return nil, err
	}
	for b := 0; b < 2; b++ {
		if !slices.Equal(res.shape[b], target[b]) {
			return nil, fmt.Errorf("reshape to %v cannot be expressed with a free batch dimension", target[b])
		}
	}
	return res, nil
}

func (c *nodeConv) pad() error {
	mode, err := c.attrs.str("mode", "constant")
	if err != nil {
		return err
	}
	if mode != "constant" {
		return fmt.Errorf("pad mode %q is not supported (only constant)", mode)
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	var pads []int
	var value float64
	if c.im.opset < 11 {
		pads, value, err = c.padAttrs()
	} else {
		pads, value, err = c.padInputs(r)
	}
	if err != nil {
		return err
	}
	if len(pads) != 2*r {
		return fmt.Errorf("pads %v: want %d values for input shape %v", pads, 2*r, x.shape[0])
	}
	zero := true
	for _, p := range pads {
		if p < 0 {
			return fmt.Errorf("pads %v: negative pads (cropping) are not supported", pads)
		}
		zero = zero && p == 0
	}
	if c.im.free && (pads[0] != 0 || pads[r] != 0) {
		return fmt.Errorf("pads %v pad the batch dimension", pads)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return errors.New("pad value is not finite")
	}
	if zero {
		c.aliasTo(0, x)
		return nil
	}
	return c.emit(plan.Pad, []string{x.name}, plan.Attrs{Pads: pads, Value: value})
}

// padAttrs reads Pad's pads and value from its attributes (before opset 11).
func (c *nodeConv) padAttrs() ([]int, float64, error) {
	if err := c.inputCount(1, 1); err != nil {
		return nil, 0, err
	}
	pads, ok, err := c.attrs.ints("pads")
	if err != nil {
		return nil, 0, err
	} else if !ok {
		return nil, 0, errors.New("pads are missing")
	}
	value, err := c.attrs.float("value", 0)
	return pads, value, err
}

// padInputs reads Pad's pads, constant_value and axes from its inputs (since
// opset 11) and returns the pads of all r axes and the value.
func (c *nodeConv) padInputs(r int) ([]int, float64, error) {
	if err := c.inputCount(2, 4); err != nil {
		return nil, 0, err
	}
	pc, err := c.constant(1, "pads")
	if err != nil {
		return nil, 0, err
	}
	pads, err := pc.ints()
	if err != nil {
		return nil, 0, fmt.Errorf("pads: %w", err)
	}
	value := 0.0
	v, err := c.optConst(2, "constant_value")
	if err != nil {
		return nil, 0, err
	}
	if v != nil {
		if len(v.data) != 1 {
			return nil, 0, fmt.Errorf("constant_value has %d values, want 1", len(v.data))
		}
		value = v.data[0]
	}
	ax, err := c.optConst(3, "axes")
	if err != nil || ax == nil {
		return pads, value, err
	}
	axes, err := ax.ints()
	if err != nil {
		return nil, 0, fmt.Errorf("axes: %w", err)
	}
	if len(pads) != 2*len(axes) {
		return nil, 0, fmt.Errorf("pads %v: want 2 values per axis of %v", pads, axes)
	}
	full := make([]int, 2*r)
	for i, a := range axes {
		ai, err := normAxis(a, r)
		if err != nil {
			return nil, 0, err
		}
		full[ai], full[r+ai] = pads[i], pads[len(axes)+i]
	}
	return full, value, nil
}
