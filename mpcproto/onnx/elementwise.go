package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the elementwise ops: Relu, Add, Sub, Mul, Div and Neg, and
// BatchNormalization, with the folding of biases and batch norms into the
// MatMul or Conv before them.

func (c *nodeConv) relu() error {
	a, err := c.data(1, 1)
	if err != nil {
		return err
	}
	return c.emit(plan.Relu, []string{a.name}, plan.Attrs{})
}

// arith converts Add, Sub, Mul and Div where at least one side is an
// activation.
func (c *nodeConv) arith() error {
	op := c.n.GetOpType()
	if err := c.inputCount(2, 2); err != nil {
		return err
	}
	_, a0 := c.input(0)
	_, a1 := c.input(1)
	if a0 != nil && a1 != nil {
		switch op {
		case "Add":
			return c.emit(plan.Add, []string{a0.name, a1.name}, plan.Attrs{})
		case "Sub":
			return c.emit(plan.Sub, []string{a0.name, a1.name}, plan.Attrs{})
		case "Mul":
			if c.silu(a0, a1) {
				return nil
			}
			return c.emit(plan.Mul, []string{a0.name, a1.name}, plan.Attrs{})
		}
		return errors.New("division by a value that depends on the input is not supported")
	}
	constFirst := a0 == nil
	x, ki := a1, 0
	if !constFirst {
		x, ki = a0, 1
	}
	k, err := c.constant(ki, "operand")
	if err != nil {
		return err
	}
	switch {
	case op == "Add" || (op == "Sub" && !constFirst):
		if op == "Sub" {
			if k, err = foldBinary("Sub", &ctensor{shape: []int{}, data: []float64{0}}, k); err != nil {
				return err
			}
		}
		if ok, err := c.foldBias(x, k, 1-ki); ok || err != nil {
			return err
		}
		w, err := c.im.weight(c.in[ki], k)
		if err != nil {
			return err
		}
		return c.emit(plan.Add, []string{x.name, w}, plan.Attrs{})
	case op == "Sub":
		w, err := c.im.weight(c.in[ki], k)
		if err != nil {
			return err
		}
		return c.emit(plan.Sub, []string{w, x.name}, plan.Attrs{})
	case op == "Mul":
		return c.emitMulConst(x, k)
	case op == "Div" && !constFirst:
		inv := &ctensor{shape: k.shape, data: make([]float64, len(k.data))}
		for i, v := range k.data {
			if v == 0 {
				return errors.New("division by a constant holding 0")
			}
			inv.data[i] = 1 / v
		}
		return c.emitMulConst(x, inv)
	}
	return errors.New("division by a value that depends on the input is not supported")
}

func (c *nodeConv) evalArith(ins []*ctensor, _ int) (*ctensor, error) {
	return foldBinary(c.n.GetOpType(), ins[0], ins[1])
}

func (c *nodeConv) evalNeg(ins []*ctensor, _ int) (*ctensor, error) {
	return foldBinary("Sub", &ctensor{shape: []int{}, data: []float64{0}, isInt: ins[0].isInt}, ins[0])
}

func (c *nodeConv) emitMulConst(x *act, k *ctensor) error {
	for _, v := range k.data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("constant factor is not finite")
		}
	}
	cst := &plan.Const{Shape: append([]int{}, k.shape...), Data: append([]float64{}, k.data...)}
	return c.emit(plan.MulConst, []string{x.name}, plan.Attrs{Const: cst})
}

// foldBias adds constant k to the bias of the MatMul or Conv producing x
// when k is constant along everything but the output channel; it reports
// whether it did.
func (c *nodeConv) foldBias(x *act, k *ctensor, xi int) (bool, error) {
	pn := c.producer(x)
	if pn == nil || (pn.Op != plan.MatMul && pn.Op != plan.Conv) {
		return false, nil
	}
	out := x.shape[0]
	if len(out) == 0 && slices.Equal(k.shape, []int{1}) && len(pn.Inputs) == 2 {
		// W[k] @ x[k] + b[1] (the seed's model): with W as [1, k] the
		// product is [1] and b its bias
		if !c.rowWeight(pn, x) {
			return false, nil
		}
		out = x.shape[0]
	}
	ch := len(out) - 1
	if pn.Op == plan.Conv {
		ch = 1
	}
	if len(k.shape) > len(out) || len(out) == 0 {
		return false, nil
	}
	n := out[ch]
	per := -1 // k's axis aligned with the channel, or -1 if broadcast
	for i, d := range k.shape {
		j := len(out) - len(k.shape) + i
		switch {
		case d == 1:
		case j == ch && d == n:
			per = i
		default:
			return false, nil
		}
	}
	bias := make([]float64, n)
	for j := range bias {
		if per >= 0 {
			bias[j] = k.data[j]
		} else {
			bias[j] = k.data[0]
		}
	}
	return true, c.addBias(pn, bias, x, xi)
}

// rowWeight turns the 1-D left weight W [k] of MatMul pn, whose product
// with a 1-D x is the scalar x (read only by this node), into the row
// [1, k], so that the product is [1]; it reports whether it did.
func (c *nodeConv) rowWeight(pn *plan.Node, x *act) bool {
	wn := pn.Inputs[0]
	t := c.im.w[wn]
	if pn.Op != plan.MatMul || t == nil || len(t.Shape) != 1 {
		return false
	}
	row := []int{1, t.Shape[0]}
	t.Shape = row
	for i := range c.im.p.Weights {
		if c.im.p.Weights[i].Name == wn {
			c.im.p.Weights[i].Shape = row
		}
	}
	for b := 0; b < 2; b++ {
		c.im.shapes[b][wn] = row
		c.im.shapes[b][pn.Output] = []int{1}
		x.shape[b] = []int{1}
	}
	return true
}

// addBias adds bias (one value per output channel) to node pn's bias,
// creating it when absent, and makes this node's output an alias of x.
func (c *nodeConv) addBias(pn *plan.Node, bias []float64, x *act, xi int) error {
	if len(pn.Inputs) == 3 {
		t := c.im.w[pn.Inputs[2]]
		if t == nil || len(t.Data) != len(bias) {
			return fmt.Errorf("internal: bias of %s", pn.Name)
		}
		for i := range bias {
			t.Data[i] += bias[i]
		}
	} else {
		w, err := c.im.weight(pn.Name+".bias", &ctensor{shape: []int{len(bias)}, data: bias})
		if err != nil {
			return err
		}
		pn.Inputs = append(pn.Inputs, w)
	}
	c.aliasTo(xi, x)
	return nil
}

func (c *nodeConv) batchnorm() error {
	if err := c.inputCount(5, 5); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	if tm, err := c.attrs.int("training_mode", 0); err != nil {
		return err
	} else if tm != 0 {
		return errors.New("training mode is not supported (export the model in eval mode)")
	}
	if sp, err := c.attrs.int("spatial", 1); err != nil {
		return err
	} else if sp != 1 {
		return errors.New("spatial=0 is not supported")
	}
	eps, err := c.attrs.float("epsilon", 1e-5)
	if err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	xs := x.shape[0]
	if len(xs) < 2 {
		return fmt.Errorf("input shape %v: want rank >= 2", xs)
	}
	s, t, err := c.bnAffine(xs, eps) // y = x*s + t
	if err != nil {
		return err
	}
	if ok, err := c.bnIntoProducer(x, s, t); ok || err != nil {
		return err
	}
	// standalone: x*s (public) + t (secret), along axis 1
	shape := make([]int, len(xs)-1)
	shape[0] = xs[1]
	for i := 1; i < len(shape); i++ {
		shape[i] = 1
	}
	scaled, err := c.im.emit(c.name, plan.MulConst, []string{x.name},
		plan.Attrs{Const: &plan.Const{Shape: shape, Data: s}}, c.out()+"/scaled")
	if err != nil {
		return err
	}
	tn, err := c.im.weight(c.name+".shift", &ctensor{shape: shape, data: t})
	if err != nil {
		return err
	}
	res, err := c.im.emit(c.name+"/shift", plan.Add, []string{scaled.name, tn}, plan.Attrs{}, c.out())
	if err != nil {
		return err
	}
	c.set(res)
	return nil
}

// bnAffine reads BatchNormalization's scale, bias, mean and var for an input
// of shape xs and returns s and t, one value per channel, with y = x*s + t.
func (c *nodeConv) bnAffine(xs []int, eps float64) (s, t []float64, err error) {
	ch := xs[1]
	var p [4]*ctensor
	for i, what := range []string{"scale", "bias", "mean", "var"} {
		if p[i], err = c.constant(1+i, what); err != nil {
			return nil, nil, err
		}
		if len(p[i].data) != ch {
			return nil, nil, fmt.Errorf("%s has shape %v, want [%d] for input shape %v", what, p[i].shape, ch, xs)
		}
	}
	s = make([]float64, ch)
	t = make([]float64, ch)
	for j := 0; j < ch; j++ {
		v := p[3].data[j] + eps
		if !(v > 0) {
			return nil, nil, fmt.Errorf("variance + epsilon is %v for channel %d", v, j)
		}
		s[j] = p[0].data[j] / math.Sqrt(v)
		t[j] = p[1].data[j] - p[2].data[j]*s[j]
	}
	return s, t, nil
}

// bnIntoProducer folds y = x*s + t into the weight and bias of the Conv or
// MatMul producing x, when this node is its only reader; it reports whether
// it did.
func (c *nodeConv) bnIntoProducer(x *act, s, t []float64) (bool, error) {
	pn := c.producer(x)
	if pn == nil || (pn.Op != plan.Conv && pn.Op != plan.MatMul) {
		return false, nil
	}
	ch := len(s)
	wt := c.im.w[pn.Inputs[1]]
	switch {
	case pn.Op == plan.Conv && wt != nil && wt.Shape[0] == ch:
		per := len(wt.Data) / ch
		for m := 0; m < ch; m++ {
			for i := 0; i < per; i++ {
				wt.Data[m*per+i] *= s[m]
			}
		}
	case pn.Op == plan.MatMul && wt != nil && len(x.shape[0]) == 2 && len(wt.Shape) == 2 && wt.Shape[1] == ch:
		for k := 0; k < wt.Shape[0]; k++ {
			for j := 0; j < ch; j++ {
				wt.Data[k*ch+j] *= s[j]
			}
		}
	default:
		return false, nil
	}
	return true, c.foldBNBias(pn, s, t, x)
}

// foldBNBias turns pn's bias b into b*s + t (t alone when pn had none).
func (c *nodeConv) foldBNBias(pn *plan.Node, s, t []float64, x *act) error {
	if len(pn.Inputs) == 3 {
		b := c.im.w[pn.Inputs[2]]
		if b == nil || len(b.Data) != len(s) {
			return fmt.Errorf("internal: bias of %s", pn.Name)
		}
		for j := range b.Data {
			b.Data[j] *= s[j]
		}
	}
	return c.addBias(pn, t, x, 0)
}
