package tensor

import (
	"fmt"
	"slices"
	"sync"
)

// Convolution on ring elements (Conv2D on uint64), without index maps and
// without materialising what the product does not need:
//
//   - the general case builds the transposed im2col matrix colsT
//     [c/group·kH·kW, n·oh·ow] of one group directly from the input (runs of
//     a row are copies when the stride is 1), in a pooled buffer, and
//     multiplies the group's weights [m/group, c/group·kH·kW] by it with
//     MatMulU64Into: at batch 1 the product lands in the output as it is
//     ([m, oh·ow] is NCHW), at larger batches it is staged and added per
//     image; no weight transpose, no output transpose;
//   - a 1x1 convolution with stride 1 and no padding is a plain product of
//     the weights by the input planes (each image's [c, h·w] is already the
//     matrix), without im2col;
//   - a depthwise convolution (one input channel per group, any channel
//     multiplier) runs a direct kernel: every output plane is a sum of kH·kW
//     shifted, scaled input planes (AVX2 on amd64: depthwisePlanesAsm).
//
// Results are exactly those of the generic Conv2D (all wrap mod 2^64).

// conv2DU64 is Conv2D for uint64.
func conv2DU64(x, w *Dense[uint64], win Window, group int) (*Dense[uint64], error) {
	shape, err := ConvShape(x.Shape, w.Shape, win, group)
	if err != nil {
		return nil, err
	}
	out := New[uint64](shape...)
	if err := Conv2DU64Into(out.Data, x, w, win, group); err != nil {
		return nil, err
	}
	return out, nil
}

// Conv2DU64Into adds the convolution of x [n, c, h, w] by w [m, c/group,
// kH, kW] over Z_2^64 to dst, which holds the [n, m, oh, ow] output
// (ConvShape) row-major; Conv2D on uint64 is Conv2DU64Into on a zero
// tensor. Accumulating lets a caller sum several products (a Beaver
// combination C + f(E, B) + f(A, F)) without a temporary per term. It fails
// on shapes that do not agree or a dst of the wrong length.
func Conv2DU64Into(dst []uint64, x, w *Dense[uint64], win Window, group int) error {
	shape, err := ConvShape(x.Shape, w.Shape, win, group)
	if err != nil {
		return err
	}
	if win.CeilMode {
		return fmt.Errorf("tensor: im2col does not take ceil mode")
	}
	if len(dst) != Size(shape) {
		return fmt.Errorf("tensor: conv output %v needs %d elements, got %d", shape, Size(shape), len(dst))
	}
	if len(x.Data) != Size(x.Shape) || len(w.Data) != Size(w.Shape) {
		return fmt.Errorf("tensor: conv tensors hold %d and %d elements for shapes %v and %v",
			len(x.Data), len(w.Data), x.Shape, w.Shape)
	}
	if len(dst) == 0 || len(x.Data) == 0 {
		return nil
	}
	g := convGeom{
		n: x.Shape[0], c: x.Shape[1], h: x.Shape[2], w: x.Shape[3],
		m: shape[1], oh: shape[2], ow: shape[3],
		kh: w.Shape[2], kw: w.Shape[3], group: group, win: win,
	}
	g.cg, g.mg = g.c/group, g.m/group
	if g.cg == 1 && group > 1 {
		convDepthwise(dst, x.Data, w.Data, &g)
		return nil
	}
	kk := g.cg * g.kh * g.kw
	ohw, hw := g.oh*g.ow, g.h*g.w
	rows := g.n * ohw // columns of the product: every output pixel of every image
	pointwise := g.kh == 1 && g.kw == 1 && win.Strides == [2]int{1, 1} && win.Pads == [4]int{}
	for gi := range group {
		wg := w.Data[gi*g.mg*kk : (gi+1)*g.mg*kk]
		switch {
		case pointwise && (g.n == 1 || ohw >= convPerImage):
			// each image's input planes of the group are the [cg, h·w] matrix
			for b := range g.n {
				in := x.Data[(b*g.c+gi*g.cg)*hw : (b*g.c+(gi+1)*g.cg)*hw]
				out := dst[(b*g.m+gi*g.mg)*ohw : (b*g.m+(gi+1)*g.mg)*ohw]
				MatMulU64Into(out, wg, in, g.mg, g.cg, ohw)
			}
		default:
			cols := getBuf(kk * rows)
			im2colT(*cols, x.Data, &g, gi)
			if g.n == 1 {
				out := dst[gi*g.mg*ohw : (gi+1)*g.mg*ohw]
				MatMulU64Into(out, wg, *cols, g.mg, kk, rows)
			} else {
				prod := getBuf(g.mg * rows)
				clear(*prod)
				MatMulU64Into(*prod, wg, *cols, g.mg, kk, rows)
				for j := range g.mg {
					for b := range g.n {
						o := (b*g.m + gi*g.mg + j) * ohw
						addInto(dst[o:o+ohw], (*prod)[j*rows+b*ohw:])
					}
				}
				putBuf(prod)
			}
			putBuf(cols)
		}
	}
	return nil
}

// convPerImage is the output plane size from which a batched 1x1
// convolution runs one product per image instead of gathering the batch.
const convPerImage = 256

type convGeom struct {
	n, c, h, w    int // input
	m, oh, ow     int // output channels and size
	kh, kw        int // kernel
	group, cg, mg int // groups, input and output channels per group
	win           Window
}

// span is the range [x0, x1) of output positions along one axis whose input
// position x*stride + off lies inside [0, size).
func span(out, size, stride, off int) (x0, x1 int) {
	if off < 0 {
		x0 = min(out, (-off+stride-1)/stride)
	}
	if size-off > 0 {
		x1 = min(out, (size-off+stride-1)/stride)
	}
	if x1 < x0 {
		x1 = x0
	}
	return x0, x1
}

// im2colT writes the transposed im2col matrix of group gi into dst
// ([cg·kh·kw, n·oh·ow]): row (ci, ki, kj) holds, for every output pixel of
// every image, the input element under kernel position (ki, kj) of channel
// ci, or 0 in the padding.
func im2colT(dst, x []uint64, g *convGeom, gi int) {
	ohw, hw := g.oh*g.ow, g.h*g.w
	rows := g.n * ohw
	sh, sw := g.win.Strides[0], g.win.Strides[1]
	dh, dw := g.win.Dilations[0], g.win.Dilations[1]
	r := 0
	for ci := range g.cg {
		for ki := range g.kh {
			offY := ki*dh - g.win.Pads[0]
			y0, y1 := span(g.oh, g.h, sh, offY)
			for kj := range g.kw {
				offX := kj*dw - g.win.Pads[1]
				x0, x1 := span(g.ow, g.w, sw, offX)
				row := dst[r*rows : (r+1)*rows]
				r++
				for b := range g.n {
					plane := x[(b*g.c+gi*g.cg+ci)*hw : (b*g.c+gi*g.cg+ci+1)*hw]
					img := row[b*ohw : (b+1)*ohw]
					clear(img[:y0*g.ow])
					clear(img[y1*g.ow:])
					for y := y0; y < y1; y++ {
						seg := img[y*g.ow : (y+1)*g.ow]
						src := plane[(y*sh+offY)*g.w : (y*sh+offY+1)*g.w]
						clear(seg[:x0])
						clear(seg[x1:])
						if x0 >= x1 {
							continue
						}
						if sw == 1 {
							copy(seg[x0:x1], src[x0+offX:])
						} else {
							for xx := x0; xx < x1; xx++ {
								seg[xx] = src[xx*sw+offX]
							}
						}
					}
				}
			}
		}
	}
}

// convDepthwise computes a convolution with one input channel per group
// (cg = 1, mg output channels per input channel) directly: output plane
// o = gi·mg + j of image b is Σ_{ki,kj} w[o, 0, ki, kj] · (input plane gi
// shifted by the kernel position). The planes are split across goroutines
// when the work is large.
func convDepthwise(out, x, w []uint64, g *convGeom) {
	planes := g.n * g.m
	workers := min(splitWorkers(uint64(planes)*uint64(g.oh*g.ow)*uint64(g.kh*g.kw)), planes)
	if workers <= 1 {
		depthwisePlanes(out, x, w, g, 0, planes)
		return
	}
	var wg sync.WaitGroup
	step := (planes + workers - 1) / workers
	for p0 := step; p0 < planes; p0 += step {
		wg.Add(1)
		go func() {
			defer wg.Done()
			depthwisePlanes(out, x, w, g, p0, min(p0+step, planes))
		}()
	}
	depthwisePlanes(out, x, w, g, 0, min(step, planes))
	wg.Wait()
}

// depthwisePlanes computes output planes [p0, p1) (plane = b·m + o).
func depthwisePlanes(out, x, w []uint64, g *convGeom, p0, p1 int) {
	if useAsm {
		depthwisePlanesAsm(out, x, w, g, p0, p1)
		return
	}
	ohw, hw, kk := g.oh*g.ow, g.h*g.w, g.kh*g.kw
	sh, sw := g.win.Strides[0], g.win.Strides[1]
	dh, dw := g.win.Dilations[0], g.win.Dilations[1]
	for p := p0; p < p1; p++ {
		b, o := p/g.m, p%g.m
		in := x[(b*g.c+o/g.mg)*hw : (b*g.c+o/g.mg+1)*hw]
		dst := out[p*ohw : (p+1)*ohw]
		wt := w[o*kk : (o+1)*kk]
		for ki := range g.kh {
			offY := ki*dh - g.win.Pads[0]
			y0, y1 := span(g.oh, g.h, sh, offY)
			for kj := range g.kw {
				wv := wt[ki*g.kw+kj]
				if wv == 0 {
					continue
				}
				offX := kj*dw - g.win.Pads[1]
				x0, x1 := span(g.ow, g.w, sw, offX)
				if x0 >= x1 {
					continue
				}
				for y := y0; y < y1; y++ {
					d := dst[y*g.ow+x0 : y*g.ow+x1]
					src := in[(y*sh+offY)*g.w : (y*sh+offY+1)*g.w]
					if sw == 1 {
						s := src[x0+offX : x1+offX]
						s = s[:len(d)]
						for i, v := range s {
							d[i] += wv * v
						}
					} else {
						for i := range d {
							d[i] += wv * src[(x0+i)*sw+offX]
						}
					}
				}
			}
		}
	}
}

// depthwisePlanesAsm is depthwisePlanes with the AVX2 kernel dwTaps4: each
// input plane is first copied into a zero-padded buffer (the padding made
// explicit, so that every kernel position of every output is inside it)
// and, with a column stride s > 1, split into its s column phases (phase r
// holds padded columns r, r+s, ...), so that every kernel position reads
// consecutive words. An output row is then one kernel call, four outputs
// at a time summed over all kernel positions in registers, plus at most 3
// last outputs in Go.
func depthwisePlanesAsm(out, x, w []uint64, g *convGeom, p0, p1 int) {
	ohw, hw, kk := g.oh*g.ow, g.h*g.w, g.kh*g.kw
	sh, sw := g.win.Strides[0], g.win.Strides[1]
	dh, dw := g.win.Dilations[0], g.win.Dilations[1]
	pt, pl := g.win.Pads[0], g.win.Pads[1]
	hp, wp := g.h+pt+g.win.Pads[2], g.w+pl+g.win.Pads[3] // padded plane
	w2 := (wp + sw - 1) / sw                             // width of a phase row
	buf := getBuf(sw * hp * w2)
	defer putBuf(buf)
	pad := *buf
	// kernel position (ki, kj) of output (y, x) reads padded row y·sh + ki·dh,
	// column x·sw + kj·dw = sw·(x + q) + r: phase r, word x + q of the row
	offs := make([]int, kk)
	for ki := range g.kh {
		for kj := range g.kw {
			r, q := kj*dw%sw, kj*dw/sw
			offs[ki*g.kw+kj] = 8 * (r*hp*w2 + ki*dh*w2 + q)
		}
	}
	n4 := g.ow &^ 3
	// the farthest word any call reads: last row, farthest kernel position
	if n4 > 0 && (g.oh-1)*sh*w2+slices.Max(offs)/8+n4 > len(pad) {
		panic("tensor: depthwise kernel out of range")
	}
	prev := -1
	for p := p0; p < p1; p++ {
		b, o := p/g.m, p%g.m
		ci := b*g.c + o/g.mg
		if ci != prev { // planes of a channel multiplier share the input
			clear(pad)
			in := x[ci*hw : (ci+1)*hw]
			for r := range g.h {
				row := in[r*g.w : (r+1)*g.w]
				if sw == 1 {
					copy(pad[(r+pt)*w2+pl:], row)
					continue
				}
				for c, v := range row {
					pc := c + pl
					pad[(pc%sw)*hp*w2+(r+pt)*w2+pc/sw] = v
				}
			}
			prev = ci
		}
		dst := out[p*ohw : (p+1)*ohw]
		wt := w[o*kk : (o+1)*kk]
		for y := range g.oh {
			row := dst[y*g.ow : (y+1)*g.ow]
			base := y * sh * w2
			if n4 > 0 {
				dwTaps4(&row[0], &pad[base], &wt[0], &offs[0], kk, n4)
			}
			for xx := n4; xx < g.ow; xx++ {
				var acc uint64
				for t, v := range wt {
					acc += v * pad[base+offs[t]/8+xx]
				}
				row[xx] += acc
			}
		}
	}
}
