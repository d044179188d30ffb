package tensor

import (
	"fmt"
	"slices"
)

// This file holds the index operations of the package. Each is split in two:
// a pure function that computes an index map (for every output element, the
// flat index of the input element it copies, or -1 for a constant fill), and
// Gather, which applies a map to a tensor of any element type. Index maps
// depend on shapes only, so the secure engine applies the same map to every
// party's share, and the plaintext twin to its float64 values.

// Reshape returns a tensor with the same data (not copied) and a new shape of
// the same size. It fails when the sizes differ or a dimension is negative.
func (t *Dense[T]) Reshape(shape ...int) (*Dense[T], error) {
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("tensor: reshape %v to %v: negative dimension", t.Shape, shape)
		}
	}
	if Size(shape) != len(t.Data) {
		return nil, fmt.Errorf("tensor: cannot reshape %v (%d elements) to %v (%d elements)",
			t.Shape, len(t.Data), shape, Size(shape))
	}
	return &Dense[T]{Shape: append([]int(nil), shape...), Data: t.Data}, nil
}

// Gather returns a tensor of the given shape whose element i is
// t.Data[idx[i]], or fill where idx[i] is negative. It fails when idx does
// not hold one entry per output element or names an element outside t.
func Gather[T Number](t *Dense[T], shape []int, idx []int, fill T) (*Dense[T], error) {
	if Size(shape) != len(idx) {
		return nil, fmt.Errorf("tensor: gather into %v needs %d indices, got %d", shape, Size(shape), len(idx))
	}
	out := make([]T, len(idx))
	n := len(t.Data)
	for i, j := range idx {
		switch {
		case j < 0:
			out[i] = fill
		case j < n:
			out[i] = t.Data[j]
		default:
			return nil, fmt.Errorf("tensor: gather index %d out of range for %d elements", j, n)
		}
	}
	return &Dense[T]{Shape: append([]int(nil), shape...), Data: out}, nil
}

// Transpose2D returns the transpose of a 2-D tensor.
func Transpose2D[T Number](t *Dense[T]) (*Dense[T], error) {
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("tensor: transpose needs a 2-D tensor, got shape %v", t.Shape)
	}
	r, c := t.Shape[0], t.Shape[1]
	out := make([]T, len(t.Data))
	for i := range r {
		row := t.Data[i*c : (i+1)*c]
		for j, v := range row {
			out[j*r+i] = v
		}
	}
	return &Dense[T]{Shape: []int{c, r}, Data: out}, nil
}

// BroadcastShape is the numpy (right-aligned) broadcast of two shapes.
func BroadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if k := len(a) - n + i; k >= 0 {
			da = a[k]
		}
		if k := len(b) - n + i; k >= 0 {
			db = b[k]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("tensor: shapes %v and %v do not broadcast (axis %d: %d vs %d)", a, b, i, da, db)
		}
	}
	return out, nil
}

// BroadcastIndex is the index map that expands a tensor of shape from to the
// shape to under numpy broadcasting (to must be a broadcast of from).
func BroadcastIndex(from, to []int) ([]int, error) {
	if len(from) > len(to) {
		return nil, fmt.Errorf("tensor: cannot broadcast %v to %v", from, to)
	}
	off := len(to) - len(from)
	// stride of each output axis in the input (0 for a broadcast axis)
	strides := make([]int, len(to))
	s := 1
	for i := len(from) - 1; i >= 0; i-- {
		switch from[i] {
		case to[off+i]:
			strides[off+i] = s
		case 1:
			strides[off+i] = 0
		default:
			return nil, fmt.Errorf("tensor: cannot broadcast %v to %v (axis %d)", from, to, off+i)
		}
		s *= from[i]
	}
	idx := make([]int, Size(to))
	counter := make([]int, len(to))
	cur := 0
	for i := range idx {
		idx[i] = cur
		// increment the multi-index, last axis fastest
		for ax := len(to) - 1; ax >= 0; ax-- {
			counter[ax]++
			cur += strides[ax]
			if counter[ax] < to[ax] {
				break
			}
			cur -= strides[ax] * counter[ax]
			counter[ax] = 0
		}
	}
	return idx, nil
}

// Broadcast expands t to shape to under numpy broadcasting.
func Broadcast[T Number](t *Dense[T], to []int) (*Dense[T], error) {
	if slices.Equal(t.Shape, to) {
		return t, nil
	}
	idx, err := BroadcastIndex(t.Shape, to)
	if err != nil {
		return nil, err
	}
	return Gather(t, to, idx, 0)
}

// PadIndex is the index map of constant padding in ONNX layout: pads holds
// one begin count per axis then one end count per axis, all >= 0. It returns
// the padded shape and the map (-1 marks padding).
func PadIndex(shape, pads []int) ([]int, []int, error) {
	r := len(shape)
	if len(pads) != 2*r {
		return nil, nil, fmt.Errorf("tensor: pad of a %d-D tensor needs %d pads, got %d", r, 2*r, len(pads))
	}
	out := make([]int, r)
	for i := range r {
		if pads[i] < 0 || pads[r+i] < 0 {
			return nil, nil, fmt.Errorf("tensor: negative pads %v", pads)
		}
		out[i] = shape[i] + pads[i] + pads[r+i]
	}
	idx := make([]int, Size(out))
	in := make([]int, r)
	for i := range idx {
		// decompose i into out coordinates
		rem, flat, ok := i, 0, true
		for ax := r - 1; ax >= 0; ax-- {
			in[ax] = rem%out[ax] - pads[ax]
			rem /= out[ax]
		}
		for ax := range r {
			if in[ax] < 0 || in[ax] >= shape[ax] {
				ok = false
				break
			}
			flat = flat*shape[ax] + in[ax]
		}
		if ok {
			idx[i] = flat
		} else {
			idx[i] = -1
		}
	}
	return out, idx, nil
}

// Pad pads t with the constant fill; pads are in ONNX layout (see PadIndex).
func Pad[T Number](t *Dense[T], pads []int, fill T) (*Dense[T], error) {
	shape, idx, err := PadIndex(t.Shape, pads)
	if err != nil {
		return nil, err
	}
	return Gather(t, shape, idx, fill)
}

// Window describes a 2-D sliding window over the last two axes of an NCHW
// tensor: a convolution's or a pooling's geometry.
type Window struct {
	Kernel    [2]int // kH, kW
	Strides   [2]int // sH, sW (0 means 1)
	Pads      [4]int // h_begin, w_begin, h_end, w_end
	Dilations [2]int // dH, dW (0 means 1)
	CeilMode  bool   // pooling only: round the output size up
}

// NewWindow builds a Window from ONNX-style attribute slices; empty slices
// take the defaults (stride 1, no padding, dilation 1).
func NewWindow(kernel, strides, pads, dilations []int, ceil bool) (Window, error) {
	var w Window
	if len(kernel) != 2 {
		return w, fmt.Errorf("tensor: window kernel must have 2 values, got %v", kernel)
	}
	copy(w.Kernel[:], kernel)
	w.Strides = [2]int{1, 1}
	w.Dilations = [2]int{1, 1}
	switch len(strides) {
	case 0:
	case 2:
		copy(w.Strides[:], strides)
	default:
		return w, fmt.Errorf("tensor: strides must have 2 values, got %v", strides)
	}
	switch len(pads) {
	case 0:
	case 4:
		copy(w.Pads[:], pads)
	default:
		return w, fmt.Errorf("tensor: pads must have 4 values, got %v", pads)
	}
	switch len(dilations) {
	case 0:
	case 2:
		copy(w.Dilations[:], dilations)
	default:
		return w, fmt.Errorf("tensor: dilations must have 2 values, got %v", dilations)
	}
	w.CeilMode = ceil
	return w, w.check()
}

func (w Window) check() error {
	for i := range 2 {
		if w.Kernel[i] < 1 || w.Strides[i] < 1 || w.Dilations[i] < 1 {
			return fmt.Errorf("tensor: window kernel %v, strides %v, dilations %v must be positive",
				w.Kernel, w.Strides, w.Dilations)
		}
	}
	for _, p := range w.Pads {
		if p < 0 {
			return fmt.Errorf("tensor: window pads %v must not be negative", w.Pads)
		}
	}
	return nil
}

// OutSize is the output height and width of the window over an h x w image.
// It fails when the window does not fit.
func (w Window) OutSize(h, wd int) (int, int, error) {
	if err := w.check(); err != nil {
		return 0, 0, err
	}
	in := [2]int{h, wd}
	var out [2]int
	for i := range 2 {
		span := w.Dilations[i]*(w.Kernel[i]-1) + 1
		total := in[i] + w.Pads[i] + w.Pads[i+2]
		if total < span {
			return 0, 0, fmt.Errorf("tensor: window %v (dilation %v) does not fit input %dx%d with pads %v",
				w.Kernel, w.Dilations, h, wd, w.Pads)
		}
		n := total - span
		o := n/w.Strides[i] + 1
		if w.CeilMode && n%w.Strides[i] != 0 {
			o++
			// the last window must start inside the input or its begin padding
			if (o-1)*w.Strides[i] >= in[i]+w.Pads[i] {
				o--
			}
		}
		out[i] = o
	}
	return out[0], out[1], nil
}

// WindowIndex is the index map gathering every window of an [n, c, h, w]
// tensor: it returns oh, ow and a map of n*c*oh*ow*kH*kW entries laid out as
// [kH*kW][n][c][oh][ow] (kernel position slowest), so that slice k of length
// n*c*oh*ow holds kernel position k of every window. Padding maps to -1.
func WindowIndex(shape []int, w Window) (oh, ow int, idx []int, err error) {
	if len(shape) != 4 {
		return 0, 0, nil, fmt.Errorf("tensor: window over shape %v: need 4-D NCHW", shape)
	}
	n, c, h, wd := shape[0], shape[1], shape[2], shape[3]
	oh, ow, err = w.OutSize(h, wd)
	if err != nil {
		return 0, 0, nil, err
	}
	outSize := n * c * oh * ow
	idx = make([]int, outSize*w.Kernel[0]*w.Kernel[1])
	for ki := range w.Kernel[0] {
		for kj := range w.Kernel[1] {
			k := ki*w.Kernel[1] + kj
			dst := idx[k*outSize : (k+1)*outSize]
			o := 0
			for plane := range n * c {
				base := plane * h * wd
				for y := range oh {
					iy := y*w.Strides[0] - w.Pads[0] + ki*w.Dilations[0]
					for x := range ow {
						ix := x*w.Strides[1] - w.Pads[1] + kj*w.Dilations[1]
						if iy < 0 || iy >= h || ix < 0 || ix >= wd {
							dst[o] = -1
						} else {
							dst[o] = base + iy*wd + ix
						}
						o++
					}
				}
			}
		}
	}
	return oh, ow, idx, nil
}

// Im2ColIndex is the index map of im2col for a convolution over an
// [n, c, h, w] tensor: the result is a [n*oh*ow, c*kH*kW] matrix whose row
// (b, y, x) holds the receptive field of output pixel (y, x) of image b, in
// (channel, kH, kW) order, matching a weight [m, c, kH, kW] reshaped to
// [m, c*kH*kW]. Padding maps to -1.
func Im2ColIndex(shape []int, w Window) (oh, ow int, idx []int, err error) {
	if len(shape) != 4 {
		return 0, 0, nil, fmt.Errorf("tensor: im2col over shape %v: need 4-D NCHW", shape)
	}
	if w.CeilMode {
		return 0, 0, nil, fmt.Errorf("tensor: im2col does not take ceil mode")
	}
	n, c, h, wd := shape[0], shape[1], shape[2], shape[3]
	oh, ow, err = w.OutSize(h, wd)
	if err != nil {
		return 0, 0, nil, err
	}
	kh, kw := w.Kernel[0], w.Kernel[1]
	cols := c * kh * kw
	idx = make([]int, n*oh*ow*cols)
	r := 0
	for b := range n {
		for y := range oh {
			for x := range ow {
				row := idx[r*cols : (r+1)*cols]
				j := 0
				for ch := range c {
					base := (b*c + ch) * h * wd
					for ki := range kh {
						iy := y*w.Strides[0] - w.Pads[0] + ki*w.Dilations[0]
						for kj := range kw {
							ix := x*w.Strides[1] - w.Pads[1] + kj*w.Dilations[1]
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								row[j] = -1
							} else {
								row[j] = base + iy*wd + ix
							}
							j++
						}
					}
				}
				r++
			}
		}
	}
	return oh, ow, idx, nil
}

// Im2Col gathers the receptive fields of a convolution over x [n, c, h, w]
// into a [n*oh*ow, c*kH*kW] matrix (see Im2ColIndex), padding with zeros.
func Im2Col[T Number](x *Dense[T], w Window) (*Dense[T], error) {
	oh, ow, idx, err := Im2ColIndex(x.Shape, w)
	if err != nil {
		return nil, err
	}
	return Gather(x, []int{x.Shape[0] * oh * ow, x.Shape[1] * w.Kernel[0] * w.Kernel[1]}, idx, 0)
}
