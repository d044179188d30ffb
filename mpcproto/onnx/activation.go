package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the activations evaluated by comparisons: Clip (ReLU6),
// LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid (and SiLU, Sigmoid(x)
// times x), and Softmax as the model's last op.

// only refuses, by name, an attribute of the node outside names.
func (c *nodeConv) only(names ...string) error {
	for _, a := range c.n.GetAttribute() {
		if !slices.Contains(names, a.GetName()) {
			return fmt.Errorf("attribute %s is not supported", a.GetName())
		}
	}
	return nil
}

// unbounded reports whether a Clip bound stands for no bound (torch writes
// ±FLT_MAX for an absent one in old opsets).
func unbounded(v float64) bool { return math.IsInf(v, 0) || math.Abs(v) >= 1e38 }

func (c *nodeConv) clip() error {
	if err := c.only("min", "max"); err != nil {
		return err
	}
	var bounds [2]*float64
	if c.im.opset < 11 {
		x, err := c.data(1, 1)
		if err != nil {
			return err
		}
		for i, name := range []string{"min", "max"} {
			if _, ok := c.attrs[name]; !ok {
				continue
			}
			v, err := c.attrs.float(name, 0)
			if err != nil {
				return err
			}
			if !unbounded(v) {
				bounds[i] = &v
			}
		}
		return c.emitClip(x, bounds)
	}
	x, err := c.data(1, 3)
	if err != nil {
		return err
	}
	for i, what := range []string{"min", "max"} {
		k, err := c.optConst(1+i, what)
		if err != nil {
			return err
		}
		if k == nil {
			continue
		}
		if len(k.data) != 1 {
			return fmt.Errorf("%s has shape %v, want a scalar", what, k.shape)
		}
		if v := k.data[0]; !unbounded(v) {
			bounds[i] = &v
		}
	}
	return c.emitClip(x, bounds)
}

func (c *nodeConv) emitClip(x *act, b [2]*float64) error {
	switch {
	case b[0] == nil && b[1] == nil:
		c.aliasTo(0, x)
		return nil
	case b[0] != nil && b[1] != nil && !(*b[0] < *b[1]):
		return fmt.Errorf("min %v is not below max %v", *b[0], *b[1])
	}
	for _, v := range b {
		if v != nil && (math.IsNaN(*v) || math.Abs(*v) > 1<<30) {
			return fmt.Errorf("bound %v out of range", *v)
		}
	}
	return c.emit(plan.Clip, []string{x.name}, plan.Attrs{Min: b[0], Max: b[1]})
}

// finiteAttr reads a float attribute that must be finite and moderate.
func (c *nodeConv) finiteAttr(name string, def float64) (float64, error) {
	v, err := c.attrs.float(name, def)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.Abs(v) > 1<<30 {
		return 0, fmt.Errorf("attribute %s = %v out of range", name, v)
	}
	return v, nil
}

func (c *nodeConv) leakyRelu() error {
	if err := c.only("alpha"); err != nil {
		return err
	}
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	alpha, err := c.finiteAttr("alpha", 0.01)
	if err != nil {
		return err
	}
	return c.emit(plan.LeakyRelu, []string{x.name}, plan.Attrs{Alpha: alpha})
}

// prelu converts PRelu with a constant slope (public in the plan, like a
// Mul by a constant).
func (c *nodeConv) prelu() error {
	if err := c.only(); err != nil {
		return err
	}
	x, err := c.data(2, 2)
	if err != nil {
		return err
	}
	k, err := c.constant(1, "slope")
	if err != nil {
		return err
	}
	for _, v := range k.data {
		if math.IsNaN(v) || math.Abs(v) > 1<<30 {
			return fmt.Errorf("slope %v out of range", v)
		}
	}
	return c.emit(plan.PRelu, []string{x.name}, plan.Attrs{Const: &plan.Const{Shape: slices.Clone(k.shape), Data: slices.Clone(k.data)}})
}

func (c *nodeConv) hardSigmoid() error {
	if err := c.only("alpha", "beta"); err != nil {
		return err
	}
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	alpha, err := c.finiteAttr("alpha", 0.2)
	if err != nil {
		return err
	}
	beta, err := c.finiteAttr("beta", 0.5)
	if err != nil {
		return err
	}
	return c.emit(plan.HardSigmoid, []string{x.name}, plan.Attrs{Alpha: alpha, Beta: beta})
}

// unary converts an activation without attributes (HardSwish, Sigmoid).
func (c *nodeConv) unary() error {
	if err := c.only(); err != nil {
		return err
	}
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	op := map[string]plan.Op{"HardSwish": plan.HardSwish, "Sigmoid": plan.Sigmoid}[c.n.GetOpType()]
	if op == "" {
		return errors.New("internal: unknown activation")
	}
	return c.emit(op, []string{x.name}, plan.Attrs{})
}

// silu rewrites Mul(x, Sigmoid(x)) (either order) into SiLU(x) when the
// Sigmoid's output is read only by this Mul; it reports whether it did.
func (c *nodeConv) silu(a0, a1 *act) bool {
	for i, pair := range [2][2]*act{{a0, a1}, {a1, a0}} {
		x, s := pair[0], pair[1]
		pn := c.producer(s)
		if pn == nil || pn.Op != plan.Sigmoid || pn.Inputs[0] != x.name {
			continue
		}
		pn.Op = plan.SiLU
		c.im.uses[c.in[i]]-- // the Mul's read of x
		c.aliasTo(1-i, s)
		return true
	}
	return false
}

// isFinal reports whether the node's output is the model's output and
// read by nothing else.
func (c *nodeConv) isFinal() bool {
	return len(c.n.GetOutput()) == 1 && c.out() == c.im.output && c.im.uses[c.out()] == 1 && c.im.p.Final == nil
}

// softmax records a last Softmax or LogSoftmax as the plan's final op,
// applied by the client after reconstruction (the holders never compute
// it), over one axis (opset >= 13, default -1) or the axes from axis on
// (before, default 1); never over the batch.
func (c *nodeConv) softmax() error {
	if err := c.only("axis"); err != nil {
		return err
	}
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	def := -1
	if c.im.opset < 13 {
		def = 1
	}
	axis, err := c.axisAttr(def, r)
	if err != nil {
		return err
	}
	axes := []int{axis}
	if c.im.opset < 13 {
		for a := axis + 1; a < r; a++ {
			axes = append(axes, a)
		}
	}
	for _, a := range axes {
		if batchAxis(x, a) || (c.im.free && a == 0) {
			return fmt.Errorf("%s over the batch dimension (axis %d) is not supported", c.n.GetOpType(), a)
		}
	}
	c.im.p.Final = &plan.Final{Op: c.n.GetOpType(), Axes: axes}
	c.aliasTo(0, x)
	return nil
}
