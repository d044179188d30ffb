package plan

import (
	"fmt"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// The window geometry of Conv and pooling nodes, as the dealer (the shapes
// of convolution triples) and the engine (im2col and pooling indices) use
// it. The plaintext twin (eval.go) walks the same windows with its own
// loops, on purpose: it is the reference the engine is tested against.

// ConvWindow is the sliding window of a Conv node whose weight has shape w
// [M, C/group, kH, kW].
func (a Attrs) ConvWindow(w []int) (tensor.Window, error) {
	if len(w) != 4 {
		return tensor.Window{}, fmt.Errorf("conv weight shape %v: want rank 4", w)
	}
	s, p, d := a.Spatial()
	return tensor.NewWindow(w[2:], s[:], p[:], d[:], false)
}

// PoolWindow is the window of a MaxPool or AveragePool node.
func (a Attrs) PoolWindow() (tensor.Window, error) {
	s, p, d := a.Spatial()
	return tensor.NewWindow(a.Kernel, s[:], p[:], d[:], a.CeilMode)
}

// PoolCounts is the divisor of an AveragePool at every position of its
// output plane (oh·ow values, the same for every image and channel) over
// an [h, w] input plane: the window's positions inside the input, or with
// CountIncludePad inside the input and its pads (positions past the end
// pads, possible in ceil mode, never count). A window with nothing to
// count is an error.
func (a Attrs) PoolCounts(h, w int) ([]int, error) {
	win, err := a.PoolWindow()
	if err != nil {
		return nil, err
	}
	oh, ow, err := win.OutSize(h, w)
	if err != nil {
		return nil, err
	}
	out := make([]int, oh*ow)
	for y := range oh {
		for x := range ow {
			cnt := 0
			for ki := range win.Kernel[0] {
				iy := y*win.Strides[0] - win.Pads[0] + ki*win.Dilations[0]
				for kj := range win.Kernel[1] {
					ix := x*win.Strides[1] - win.Pads[1] + kj*win.Dilations[1]
					if a.CountIncludePad {
						if iy < h+win.Pads[2] && ix < w+win.Pads[3] {
							cnt++
						}
					} else if iy >= 0 && iy < h && ix >= 0 && ix < w {
						cnt++
					}
				}
			}
			if cnt == 0 {
				return nil, fmt.Errorf("a pooling window lies entirely in the padding")
			}
			out[y*ow+x] = cnt
		}
	}
	return out, nil
}
