package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// ctensor is a constant tensor known at import: an initializer, a Constant,
// or the result of folding ops over constants and activation shapes.
// Integer tensors (int64, int32, bool) keep integer semantics when folded;
// their values are held as float64, exact up to 2^53 (larger values only
// appear as Slice's "to the end" sentinels, which are clamped).
type ctensor struct {
	shape []int
	data  []float64
	isInt bool
}

// maxFolded bounds the size of a tensor computed at import (initializers
// are bounded by plan.MaxElements).
const maxFolded = 1 << 22

func newC(shape []int, isInt bool) (*ctensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	if n > maxFolded {
		return nil, fmt.Errorf("folded constant of shape %v holds more than %d elements", shape, maxFolded)
	}
	return &ctensor{shape: append([]int{}, shape...), data: make([]float64, n), isInt: isInt}, nil
}

// elements is the element count of shape, bounded by plan.MaxElements.
func elements(shape []int) (int, error) {
	if len(shape) > plan.MaxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), plan.MaxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 || d > plan.MaxDim {
			return 0, fmt.Errorf("shape %v: dimension %d out of range", shape, d)
		}
		n *= d
		if n > plan.MaxElements {
			return 0, fmt.Errorf("shape %v holds more than %d elements", shape, plan.MaxElements)
		}
	}
	return n, nil
}

// ints returns the values of a 1-D (or scalar) integer-valued tensor.
func (c *ctensor) ints() ([]int, error) {
	if len(c.shape) > 1 {
		return nil, fmt.Errorf("want a 1-D tensor, got shape %v", c.shape)
	}
	out := make([]int, len(c.data))
	for i, v := range c.data {
		if v != math.Trunc(v) || math.IsNaN(v) {
			return nil, fmt.Errorf("value %v is not an integer", v)
		}
		switch {
		case v > math.MaxInt32*4:
			out[i] = math.MaxInt32 * 4
		case v < math.MinInt32*4:
			out[i] = math.MinInt32 * 4
		default:
			out[i] = int(v)
		}
	}
	return out, nil
}

func (c *ctensor) equal(d *ctensor) bool {
	return slices.Equal(c.shape, d.shape) && slices.Equal(c.data, d.data)
}

func intsC(v []int) *ctensor {
	c := &ctensor{shape: []int{len(v)}, data: make([]float64, len(v)), isInt: true}
	for i, x := range v {
		c.data[i] = float64(x)
	}
	return c
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

func foldBinary(op string, a, b *ctensor) (*ctensor, error) {
	shape, err := plan.Broadcast(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	isInt := a.isInt && b.isInt
	out, err := newC(shape, isInt)
	if err != nil {
		return nil, err
	}
	var ia, ib []int // the element of a and of b each output element reads
	if ia, err = tensor.BroadcastIndex(a.shape, shape); err == nil {
		ib, err = tensor.BroadcastIndex(b.shape, shape)
	}
	if err != nil {
		return nil, err
	}
	for i := range out.data {
		x, y := a.data[ia[i]], b.data[ib[i]]
		var v float64
		switch op {
		case "Add":
			v = x + y
		case "Sub":
			v = x - y
		case "Mul":
			v = x * y
		case "Div":
			if isInt {
				if y == 0 {
					return nil, errors.New("integer division by zero")
				}
				v = math.Trunc(x / y)
			} else {
				v = x / y
			}
		}
		out.data[i] = v
	}
	return out, nil
}

func foldGather(data, indices *ctensor, axis int) (*ctensor, error) {
	if len(data.shape) == 0 {
		return nil, errors.New("gather from a scalar")
	}
	ax, err := normAxis(axis, len(data.shape))
	if err != nil {
		return nil, err
	}
	idx, err := indices.flatInts()
	if err != nil {
		return nil, fmt.Errorf("indices: %w", err)
	}
	n := data.shape[ax]
	for i, v := range idx {
		if v < -n || v >= n {
			return nil, fmt.Errorf("index %d out of range for dimension %d", v, n)
		}
		if v < 0 {
			idx[i] = v + n
		}
	}
	shape := append(append(append([]int{}, data.shape[:ax]...), indices.shape...), data.shape[ax+1:]...)
	out, err := newC(shape, data.isInt)
	if err != nil {
		return nil, err
	}
	outer := sizeOf(data.shape[:ax])
	inner := sizeOf(data.shape[ax+1:])
	k := 0
	for o := 0; o < outer; o++ {
		for _, j := range idx {
			copy(out.data[k:k+inner], data.data[(o*n+j)*inner:(o*n+j+1)*inner])
			k += inner
		}
	}
	return out, nil
}

// flatInts returns the values of an integer tensor of any shape.
func (c *ctensor) flatInts() ([]int, error) {
	flat := &ctensor{shape: []int{len(c.data)}, data: c.data}
	return flat.ints()
}

func sizeOf(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func foldUnsqueeze(data *ctensor, axes []int) (*ctensor, error) {
	r := len(data.shape) + len(axes)
	if r > plan.MaxRank {
		return nil, fmt.Errorf("rank %d exceeds %d", r, plan.MaxRank)
	}
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, fmt.Errorf("axes %v repeat axis %d", axes, a)
		}
		ins[ax] = true
	}
	shape := make([]int, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, data.shape[j])
			j++
		}
	}
	return &ctensor{shape: shape, data: data.data, isInt: data.isInt}, nil
}

func squeezeShape(shape []int, axes []int, haveAxes bool) ([]int, error) {
	drop := make([]bool, len(shape))
	if !haveAxes {
		for i, d := range shape {
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(shape))
		if err != nil {
			return nil, err
		}
		if shape[ax] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of shape %v", a, shape)
		}
		drop[ax] = true
	}
	var out []int
	for i, d := range shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return out, nil
}

func unsqueezeShape(shape []int, axes []int) ([]int, error) {
	c, err := foldUnsqueeze(&ctensor{shape: shape}, axes)
	if err != nil {
		return nil, err
	}
	return c.shape, nil
}

func foldConcat(ins []*ctensor, axis int) (*ctensor, error) {
	if len(ins) == 0 {
		return nil, errors.New("concat of nothing")
	}
	r := len(ins[0].shape)
	if r == 0 {
		return nil, errors.New("concat of scalars")
	}
	ax, err := normAxis(axis, r)
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, ins[0].shape...)
	shape[ax] = 0
	isInt := true
	for _, c := range ins {
		if len(c.shape) != r {
			return nil, fmt.Errorf("concat of shapes %v and %v", ins[0].shape, c.shape)
		}
		for i := range c.shape {
			if i != ax && c.shape[i] != ins[0].shape[i] {
				return nil, fmt.Errorf("concat of shapes %v and %v", ins[0].shape, c.shape)
			}
		}
		shape[ax] += c.shape[ax]
		isInt = isInt && c.isInt
	}
	out, err := newC(shape, isInt)
	if err != nil {
		return nil, err
	}
	outer := sizeOf(shape[:ax])
	inner := sizeOf(shape[ax+1:])
	k := 0
	for o := 0; o < outer; o++ {
		for _, c := range ins {
			n := c.shape[ax] * inner
			copy(out.data[k:k+n], c.data[o*n:(o+1)*n])
			k += n
		}
	}
	return out, nil
}

// sliceRange resolves ONNX Slice's start, end and step on a dimension of
// size n into the selected indices.
func sliceRange(start, end, step, n int) ([]int, error) {
	if step == 0 {
		return nil, errors.New("slice step is 0")
	}
	clamp := func(v, lo, hi int) int { return max(lo, min(v, hi)) }
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	var out []int
	if step > 0 {
		start, end = clamp(start, 0, n), clamp(end, 0, n)
		for i := start; i < end; i += step {
			out = append(out, i)
		}
	} else {
		start, end = clamp(start, 0, n-1), clamp(end, -1, n-1)
		for i := start; i > end; i += step {
			out = append(out, i)
		}
	}
	return out, nil
}

func foldSlice(data *ctensor, starts, ends, axes, steps []int) (*ctensor, error) {
	r := len(data.shape)
	axes, steps, err := sliceLists(starts, ends, axes, steps)
	if err != nil {
		return nil, fmt.Errorf("slice %w", err)
	}
	sel := make([][]int, r)
	for i := 0; i < r; i++ {
		for j := 0; j < data.shape[i]; j++ {
			sel[i] = append(sel[i], j)
		}
	}
	for i, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		s, err := sliceRange(starts[i], ends[i], steps[i], data.shape[ax])
		if err != nil {
			return nil, err
		}
		sel[ax] = s
	}
	return gatherSel(data, sel)
}

// gatherSel picks the elements at the cross product of sel's per-axis indices.
func gatherSel(data *ctensor, sel [][]int) (*ctensor, error) {
	shape := make([]int, len(sel))
	for i, s := range sel {
		shape[i] = len(s)
	}
	st := tensor.Strides(data.shape)
	return gatherAt(data, shape, func(idx []int) int {
		o := 0
		for d := range idx {
			o += sel[d][idx[d]] * st[d]
		}
		return o
	})
}

// gatherAt returns a tensor of the given shape whose element at multi-index
// idx is data's element at flat offset at(idx).
func gatherAt(data *ctensor, shape []int, at func(idx []int) int) (*ctensor, error) {
	out, err := newC(shape, data.isInt)
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(shape))
	for k := range out.data {
		rem := k
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d] = rem % shape[d]
			rem /= shape[d]
		}
		out.data[k] = data.data[at(idx)]
	}
	return out, nil
}

func foldTranspose(data *ctensor, perm []int) (*ctensor, error) {
	r := len(data.shape)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	seen := make([]bool, r)
	shape := make([]int, r)
	for i, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
		shape[i] = data.shape[p]
	}
	st := tensor.Strides(data.shape)
	return gatherAt(data, shape, func(idx []int) int {
		o := 0
		for d := range idx {
			o += idx[d] * st[perm[d]]
		}
		return o
	})
}

// reshapeTarget resolves an ONNX Reshape target (0 copies unless allowzero,
// one -1 inferred) for an input shape.
func reshapeTarget(in, target []int, allowZero bool) ([]int, error) {
	out := make([]int, len(target))
	total := sizeOf(in)
	known, free := 1, -1
	for i, d := range target {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v: 0 at index %d beyond input rank %d", target, i, len(in))
			}
			out[i] = in[i]
		case d == -1:
			if free >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			free = i
			continue
		case d < -1:
			return nil, fmt.Errorf("shape %v: invalid value %d", target, d)
		default:
			out[i] = d
		}
		known *= out[i]
		if known > plan.MaxElements {
			return nil, fmt.Errorf("shape %v: too many elements", target)
		}
	}
	if free >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		out[free] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
	}
	return out, nil
}

func foldCast(data *ctensor, to int64) (*ctensor, error) {
	out := &ctensor{shape: data.shape, data: make([]float64, len(data.data))}
	switch to {
	case dtFloat, dtDouble, dtFloat16:
		copy(out.data, data.data)
	case dtInt64, dtInt32, dtInt16, dtInt8, dtUint8, dtUint16, dtUint32, dtUint64:
		out.isInt = true
		for i, v := range data.data {
			out.data[i] = math.Trunc(v)
		}
	case dtBool:
		out.isInt = true
		for i, v := range data.data {
			if v != 0 {
				out.data[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("cast to data type %d is not supported", to)
	}
	return out, nil
}
