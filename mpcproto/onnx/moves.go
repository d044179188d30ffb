package onnx

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the ops over activations that move or sum elements:
// Concat, Transpose, Slice, Split, Gather (constant indices), ReduceSum and
// ReduceMean. All are local on the shares (ReduceMean's division is a
// MulConst).

// batchAxis reports whether axis a of activation x follows the batch (its
// size differs between the probe bindings).
func batchAxis(x *act, a int) bool { return x.shape[0][a] != x.shape[1][a] }

// axisAttr reads an axis attribute and normalizes it for rank r.
func (c *nodeConv) axisAttr(def, r int) (int, error) {
	axis, err := c.attrs.int("axis", def)
	if err != nil {
		return 0, err
	}
	return normAxis(axis, r)
}

// concat joins activations and constants (secret weights) along an axis.
func (c *nodeConv) concat() error {
	if err := c.only("axis"); err != nil {
		return err
	}
	var first *act
	for i := range c.in {
		if _, a := c.input(i); a != nil {
			first = a
			break
		}
	}
	if first == nil {
		return errors.New("concat has no input")
	}
	axis, err := c.axisAttr(0, len(first.shape[0]))
	if err != nil {
		return err
	}
	var inputs []string
	for i, name := range c.in {
		if name == "" {
			continue
		}
		if _, a := c.input(i); a != nil {
			inputs = append(inputs, a.name)
			continue
		}
		w, err := c.constant(i, "operand")
		if err != nil {
			return err
		}
		wn, err := c.im.weight(name, w)
		if err != nil {
			return err
		}
		inputs = append(inputs, wn)
	}
	if len(inputs) > plan.MaxConcat {
		return fmt.Errorf("concat of %d inputs, more than %d", len(inputs), plan.MaxConcat)
	}
	return c.emit(plan.Concat, inputs, plan.Attrs{Axis: axis})
}

func (c *nodeConv) transpose() error {
	if err := c.only("perm"); err != nil {
		return err
	}
	x, err := c.data(1, 1)
	if err != nil {
		return err
	}
	perm, ok, err := c.attrs.ints("perm")
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	if !ok {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	return c.emit(plan.Transpose, []string{x.name}, plan.Attrs{Perm: perm})
}

// slice converts Slice: starts, ends and axes are attributes before opset
// 10, constant inputs (with steps) since. Each sliced axis is normalized
// (clamped, negative indices resolved) into the plan's start, end and step;
// the batch axis may only be kept whole.
func (c *nodeConv) slice() error {
	if err := c.only("starts", "ends", "axes"); err != nil {
		return err
	}
	var lists [4][]int // starts, ends, axes, steps
	var x *act
	var err error
	if c.im.opset < 10 {
		if x, err = c.data(1, 1); err != nil {
			return err
		}
		for i, name := range []string{"starts", "ends", "axes"} {
			if lists[i], _, err = c.attrs.ints(name); err != nil {
				return err
			}
		}
	} else {
		if x, err = c.data(3, 5); err != nil {
			return err
		}
		for i, what := range []string{"starts", "ends", "axes", "steps"} {
			k, err := c.optConst(1+i, what)
			if err != nil {
				return err
			}
			if k != nil {
				if lists[i], err = k.ints(); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
		}
	}
	a, err := sliceAttrs(x, lists[0], lists[1], lists[2], lists[3])
	if err != nil {
		return err
	}
	if len(a.Axes) == 0 {
		c.aliasTo(0, x)
		return nil
	}
	return c.emit(plan.Slice, []string{x.name}, a)
}

// sliceLists checks ONNX Slice's starts, ends, axes and steps for equal
// lengths and fills the defaults of the optional axes (0, 1, ...) and
// steps (all 1). It is shared by the folding of constant slices and the
// conversion of slices of activations.
func sliceLists(starts, ends, axes, steps []int) ([]int, []int, error) {
	if len(ends) != len(starts) {
		return nil, nil, fmt.Errorf("starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, i)
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, nil, errors.New("starts, ends, axes and steps differ in length")
	}
	return axes, steps, nil
}

// sliceAttrs resolves ONNX Slice's lists against activation x into plan
// attrs; whole axes are left out.
func sliceAttrs(x *act, starts, ends, axes, steps []int) (plan.Attrs, error) {
	var a plan.Attrs
	r := len(x.shape[0])
	axes, steps, err := sliceLists(starts, ends, axes, steps)
	if err != nil {
		return a, err
	}
	seen := map[int]bool{}
	for i, ax := range axes {
		ax, err := normAxis(ax, r)
		if err != nil {
			return a, err
		}
		if seen[ax] {
			return a, fmt.Errorf("axis %d is sliced twice", ax)
		}
		seen[ax] = true
		var sel [2][]int
		for b := 0; b < 2; b++ {
			if sel[b], err = sliceRange(starts[i], ends[i], steps[i], x.shape[b][ax]); err != nil {
				return a, err
			}
		}
		whole := steps[i] == 1 && len(sel[0]) == x.shape[0][ax] && len(sel[1]) == x.shape[1][ax]
		switch {
		case whole:
			continue
		case batchAxis(x, ax):
			return a, fmt.Errorf("slicing the batch dimension (axis %d) is not supported", ax)
		case len(sel[0]) == 0:
			return a, fmt.Errorf("slice of axis %d is empty", ax)
		}
		s := sel[0]
		a.Axes = append(a.Axes, ax)
		a.Starts = append(a.Starts, s[0])
		a.Ends = append(a.Ends, s[0]+len(s)*steps[i])
		a.Steps = append(a.Steps, steps[i])
	}
	if len(a.Ends) > 0 {
		for i, e := range a.Ends {
			a.Ends[i] = max(e, -1)
		}
	}
	return a, nil
}

// split converts Split into one Slice per output along the axis: the
// sizes from the split attribute (before opset 13) or input, else
// num_outputs (opset 18) or as many equal parts as outputs.
func (c *nodeConv) split() error {
	if err := c.only("axis", "split", "num_outputs"); err != nil {
		return err
	}
	x, err := c.data(1, 2)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	axis, err := c.axisAttr(0, r)
	if err != nil {
		return err
	}
	if batchAxis(x, axis) {
		return fmt.Errorf("splitting the batch dimension (axis %d) is not supported", axis)
	}
	outs := c.n.GetOutput()
	n := x.shape[0][axis]
	var sizes []int
	if c.im.opset < 13 {
		if sizes, _, err = c.attrs.ints("split"); err != nil {
			return err
		}
	} else if k, err := c.optConst(1, "split"); err != nil {
		return err
	} else if k != nil {
		if sizes, err = k.ints(); err != nil {
			return fmt.Errorf("split: %w", err)
		}
	}
	if sizes == nil {
		parts := len(outs)
		if no, ok, err := c.attrs.ints("num_outputs"); err != nil {
			return err
		} else if ok && len(no) == 1 {
			parts = no[0]
		}
		if parts < 1 || parts != len(outs) {
			return fmt.Errorf("split into %d parts with %d outputs", parts, len(outs))
		}
		each := (n + parts - 1) / parts
		for i := range parts {
			sizes = append(sizes, max(0, min(each, n-i*each)))
		}
	}
	if len(sizes) != len(outs) {
		return fmt.Errorf("split sizes %v for %d outputs", sizes, len(outs))
	}
	total := 0
	for _, s := range sizes {
		if s <= 0 {
			return fmt.Errorf("split sizes %v: want positive sizes", sizes)
		}
		total += s
	}
	if total != n {
		return fmt.Errorf("split sizes %v do not add up to dimension %d of input shape %v", sizes, n, x.shape[0])
	}
	off := 0
	for i, o := range outs {
		a := plan.Attrs{Axes: []int{axis}, Starts: []int{off}, Ends: []int{off + sizes[i]}, Steps: []int{1}}
		off += sizes[i]
		if o == "" {
			continue
		}
		res, err := c.im.emit(fmt.Sprintf("%s/%d", c.name, i), plan.Slice, []string{x.name}, a, o)
		if err != nil {
			return err
		}
		c.im.acts[o] = res
	}
	return nil
}

// gather converts Gather of an activation by constant indices.
func (c *nodeConv) gather() error {
	if err := c.only("axis"); err != nil {
		return err
	}
	x, err := c.data(2, 2)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	axis, err := c.axisAttr(0, r)
	if err != nil {
		return err
	}
	if batchAxis(x, axis) || (c.im.free && axis == 0) {
		return fmt.Errorf("gathering along the batch dimension (axis %d) is not supported", axis)
	}
	k, err := c.constant(1, "indices")
	if err != nil {
		return err
	}
	idx, err := k.flatInts()
	if err != nil {
		return fmt.Errorf("indices: %w", err)
	}
	n := x.shape[0][axis]
	for i, v := range idx {
		if v < -n || v >= n {
			return fmt.Errorf("index %d out of range for dimension %d", v, n)
		}
		if v < 0 {
			idx[i] = v + n
		}
	}
	return c.emit(plan.Gather, []string{x.name}, plan.Attrs{Axis: axis, Indices: idx, IndexShape: slices.Clone(k.shape)})
}

// reduce converts ReduceSum and ReduceMean: the axes from the attribute
// (before opset 13 for ReduceSum, 18 for ReduceMean) or the input, all
// axes when none (unless noop_with_empty_axes), keepdims (default 1); a
// mean is the sum times 1/count (MulConst). The batch axis may not be
// reduced.
func (c *nodeConv) reduce() error {
	if err := c.only("axes", "keepdims", "noop_with_empty_axes"); err != nil {
		return err
	}
	op := c.n.GetOpType()
	x, err := c.data(1, 2)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	inputAxes := (op == "ReduceSum" && c.im.opset >= 13) || c.im.opset >= 18
	var axes []int
	if inputAxes {
		k, err := c.optConst(1, "axes")
		if err != nil {
			return err
		}
		if k != nil {
			if axes, err = k.ints(); err != nil {
				return fmt.Errorf("axes: %w", err)
			}
		}
	} else if axes, _, err = c.attrs.ints("axes"); err != nil {
		return err
	}
	keep, err := c.attrs.int("keepdims", 1)
	if err != nil {
		return err
	}
	noop, err := c.attrs.int("noop_with_empty_axes", 0)
	if err != nil {
		return err
	}
	if len(axes) == 0 {
		if noop != 0 {
			c.aliasTo(0, x)
			return nil
		}
		for i := range r {
			axes = append(axes, i)
		}
	}
	norm := make([]int, 0, len(axes))
	cnt := 1
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return err
		}
		if slices.Contains(norm, ax) {
			return fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		if batchAxis(x, ax) || (c.im.free && ax == 0) {
			return fmt.Errorf("reducing over the batch dimension (axis %d) is not supported", ax)
		}
		norm = append(norm, ax)
		cnt *= x.shape[0][ax]
	}
	sort.Ints(norm)
	a := plan.Attrs{Axes: norm, KeepDims: keep != 0}
	if op == "ReduceSum" {
		return c.emit(plan.ReduceSum, []string{x.name}, a)
	}
	sum, err := c.im.emit(c.name+"/sum", plan.ReduceSum, []string{x.name}, a, c.out()+"/sum")
	if err != nil {
		return err
	}
	return c.emitMulConst(sum, &ctensor{shape: []int{}, data: []float64{1 / float64(cnt)}})
}
