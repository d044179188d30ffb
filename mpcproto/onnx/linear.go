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
		return c.emit(plan.MatMul, []string{a0.name, a1.name}, plan.Attrs{})
	case k0 != nil:
		// W @ x: the weight on the left, as torch exports fc.matmul(x)
		w, err := c.constant(0, "weight")
		if err != nil {
			return err
		}
		name, err := c.im.weight(c.in[0], w)
		if err != nil {
			return err
		}
		return c.emit(plan.MatMul, []string{name, a1.name}, plan.Attrs{})
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	if len(w.shape) == 1 {
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
	name, err := c.im.weight(c.in[1], w)
	if err != nil {
		return err
	}
	return c.emit(plan.MatMul, []string{a0.name, name}, plan.Attrs{})
}

// gemm converts Gemm: Y = alpha·A'·B' + beta·C (A' = A or Aᵀ by transA,
// B' likewise), the data in A (a layer, x·W) or in B (torch.addmm(b, W, x),
// the weight on the left).
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
	if k0, a0 := c.input(0); k0 != nil && a0 == nil {
		if _, b := c.input(1); b != nil {
			return c.gemmLeft(alpha, beta, transA != 0, transB != 0)
		}
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if len(x.shape[0]) != 2 {
		return fmt.Errorf("input shape %v: Gemm wants rank 2", x.shape[0])
	}
	if transA != 0 {
		if x, err = c.transposed(x); err != nil {
			return err
		}
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
	w := scaled(b, alpha)
	return c.emitWeighted(plan.MatMul, x, w, "bias C", func(bias *ctensor) (*ctensor, error) {
		return gemmBias(bias, w.shape[1], beta)
	}, plan.Attrs{})
}

// scaled is k times the constant c.
func scaled(c *ctensor, k float64) *ctensor {
	out := &ctensor{shape: c.shape, data: make([]float64, len(c.data))}
	for i, v := range c.data {
		out.data[i] = k * v
	}
	return out
}

// gemmLeft is Gemm with the constant A on the left of the data B: a
// MatMul W·x with W = alpha·A', then beta·C added: as the MatMul's bias
// when C is one value per column, else as a secret weight.
func (c *nodeConv) gemmLeft(alpha, beta float64, transA, transB bool) error {
	x := c.im.acts[c.in[1]]
	if len(x.shape[0]) != 2 {
		return fmt.Errorf("input shape %v: Gemm wants rank 2", x.shape[0])
	}
	if transB {
		var err error
		if x, err = c.transposed(x); err != nil {
			return err
		}
	}
	a, err := c.constant(0, "weight A")
	if err != nil {
		return err
	}
	if len(a.shape) != 2 {
		return fmt.Errorf("weight A has shape %v, want rank 2", a.shape)
	}
	if transA {
		if a, err = foldTranspose(a, nil); err != nil {
			return err
		}
	}
	wn, err := c.im.weight(c.in[0], scaled(a, alpha))
	if err != nil {
		return err
	}
	cc, err := c.optConst(2, "bias C")
	if err != nil || cc == nil {
		if err != nil {
			return err
		}
		return c.emit(plan.MatMul, []string{wn, x.name}, plan.Attrs{})
	}
	n := x.shape[0][1]
	if bias, err := gemmBias(cc, n, beta); err == nil {
		bn, err := c.im.weight(c.in[2], bias)
		if err != nil {
			return err
		}
		return c.emit(plan.MatMul, []string{wn, x.name, bn}, plan.Attrs{})
	}
	mm, err := c.im.emit(c.name, plan.MatMul, []string{wn, x.name}, plan.Attrs{}, c.out()+"/product")
	if err != nil {
		return err
	}
	bn, err := c.im.weight(c.in[2], scaled(cc, beta))
	if err != nil {
		return err
	}
	res, err := c.im.emit(c.name+"/bias", plan.Add, []string{mm.name, bn}, plan.Attrs{}, c.out())
	if err != nil {
		return err
	}
	c.set(res)
	return nil
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

// transposed emits the transpose of the 2-D activation x (Gemm's transA
// or transB on the model's data).
func (c *nodeConv) transposed(x *act) (*act, error) {
	return c.im.emit(c.name+"/T", plan.Transpose, []string{x.name}, plan.Attrs{Perm: []int{1, 0}}, c.out()+"/T")
}
