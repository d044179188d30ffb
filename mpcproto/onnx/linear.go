package onnx

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the linear layers: MatMul and Gemm.

func (c *nodeConv) matmul() error {
	if err := c.inputCount(2, 2); err != nil {
		return err
	}
	k0, a0 := c.input(0)
	_, a1 := c.input(1)
	switch {
	case a0 == nil && a1 == nil:
		return errors.New("MatMul of two constants is not supported")
	case a0 != nil && a1 != nil:
		return errors.New("MatMul of two values that depend on the input is not supported")
	case k0 != nil:
		return errors.New("MatMul with a constant left operand is not supported (export x @ W, not W @ x)")
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	switch len(w.shape) {
	case 2:
		name, err := c.im.weight(c.in[1], w)
		if err != nil {
			return err
		}
		return c.emit(plan.MatMul, []string{a0.name, name}, plan.Attrs{})
	case 1:
		// x @ w with a 1-D w: multiply by the column [k, 1], then drop the
		// last dimension
		col := &ctensor{shape: []int{w.shape[0], 1}, data: w.data}
		name, err := c.im.weight(c.in[1], col)
		if err != nil {
			return err
		}
		mm, err := c.im.emit(c.name, plan.MatMul, []string{a0.name, name}, plan.Attrs{}, c.out()+"/col")
		if err != nil {
			return err
		}
		var target [2][]int
		for b := 0; b < 2; b++ {
			target[b] = mm.shape[b][:len(mm.shape[b])-1]
		}
		res, err := c.im.reshapeTo(c.name+"/squeeze", mm, target, c.out())
		if err != nil {
			return err
		}
		c.set(res)
		return nil
	}
	return fmt.Errorf("MatMul with a constant of rank %d is not supported (want 1 or 2)", len(w.shape))
}

func (c *nodeConv) gemm() error {
	if err := c.inputCount(2, 3); err != nil {
		return err
	}
	alpha, errAlpha := c.attrs.float("alpha", 1)
	beta, errBeta := c.attrs.float("beta", 1)
	transA, errTransA := c.attrs.int("transA", 0)
	transB, errTransB := c.attrs.int("transB", 0)
	if err := cmp.Or(errAlpha, errBeta, errTransA, errTransB); err != nil {
		return err // the first in the order above
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if transA != 0 {
		return errors.New("transA on the model's data is not supported")
	}
	if len(x.shape[0]) != 2 {
		return fmt.Errorf("input shape %v: Gemm wants rank 2", x.shape[0])
	}
	b, err := c.constant(1, "weight B")
	if err != nil {
		return err
	}
	if len(b.shape) != 2 {
		return fmt.Errorf("weight B has shape %v, want rank 2", b.shape)
	}
	if transB != 0 {
		if b, err = foldTranspose(b, nil); err != nil {
			return err
		}
	}
	w := &ctensor{shape: b.shape, data: make([]float64, len(b.data))}
	for i, v := range b.data {
		w.data[i] = alpha * v
	}
	return c.emitWeighted(plan.MatMul, x, w, "bias C", func(bias *ctensor) (*ctensor, error) {
		return gemmBias(bias, w.shape[1], beta)
	}, plan.Attrs{})
}

// gemmBias is Gemm's bias C times beta as one value per column of the n
// columns; C must be a row (or a scalar) broadcast over the rows.
func gemmBias(bias *ctensor, n int, beta float64) (*ctensor, error) {
	ok := len(bias.shape) <= 2
	for i, d := range bias.shape {
		last := i == len(bias.shape)-1
		if d != 1 && !(last && d == n) {
			ok = false
		}
	}
	if !ok {
		return nil, fmt.Errorf("bias C of shape %v is not a per-column bias for %d columns", bias.shape, n)
	}
	v := &ctensor{shape: []int{n}, data: make([]float64, n)}
	for j := range v.data {
		if len(bias.data) == n {
			v.data[j] = beta * bias.data[j]
		} else {
			v.data[j] = beta * bias.data[0]
		}
	}
	return v, nil
}
