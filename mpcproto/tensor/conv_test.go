package tensor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type convCase struct {
	n, cg, mg, group int
	kh, kw, h, w     int
	win              Window
}

func (c convCase) String() string {
	return fmt.Sprintf("n=%d c=%d m=%d group=%d k=%dx%d in=%dx%d strides=%v pads=%v dil=%v",
		c.n, c.cg*c.group, c.mg*c.group, c.group, c.kh, c.kw, c.h, c.w, c.win.Strides, c.win.Pads, c.win.Dilations)
}

// checkConv compares Conv2D on uint64 (the fast paths) with the direct
// 7-loop convolution, on full-range words so that everything wraps. It
// reports false when the window does not fit (nothing to compare).
func checkConv(t testing.TB, r *rand.Rand, c convCase) bool {
	t.Helper()
	if _, _, err := c.win.OutSize(c.h, c.w); err != nil {
		return false
	}
	x := &Dense[uint64]{Shape: []int{c.n, c.cg * c.group, c.h, c.w}, Data: randU64(r, c.n*c.cg*c.group*c.h*c.w)}
	w := &Dense[uint64]{Shape: []int{c.mg * c.group, c.cg, c.kh, c.kw}, Data: randU64(r, c.mg*c.group*c.cg*c.kh*c.kw)}
	got, err := Conv2D(x, w, c.win, c.group)
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	want := naiveConvT(x, w, c.win, c.group)
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("%v: shape %v, want %v", c, got.Shape, want.Shape)
	}
	if !slices.Equal(got.Data, want.Data) {
		i := 0
		for got.Data[i] == want.Data[i] {
			i++
		}
		t.Fatalf("%v: element %d = %#x, want %#x", c, i, got.Data[i], want.Data[i])
	}
	// Conv2DU64Into accumulates into what dst holds
	acc := randU64(r, len(want.Data))
	sum := slices.Clone(acc)
	for i, v := range want.Data {
		sum[i] += v
	}
	if err := Conv2DU64Into(acc, x, w, c.win, c.group); err != nil {
		t.Fatalf("%v: into: %v", c, err)
	}
	if !slices.Equal(acc, sum) {
		t.Fatalf("%v: Conv2DU64Into does not add the convolution to dst", c)
	}
	return true
}

func randConvCase(r *rand.Rand) convCase {
	var c convCase
	c.n = r.IntN(4)
	c.kh, c.kw = 1+r.IntN(4), 1+r.IntN(4)
	if r.IntN(6) == 0 {
		c.kh, c.kw = 7, 1+r.IntN(7)
	}
	switch r.IntN(4) {
	case 0: // depthwise, with a channel multiplier
		c.cg, c.group, c.mg = 1, 1+r.IntN(9), 1+r.IntN(3)
	case 1: // grouped
		c.cg, c.group, c.mg = 1+r.IntN(4), 2+r.IntN(3), 1+r.IntN(4)
	default:
		c.cg, c.group, c.mg = 1+r.IntN(12), 1, 1+r.IntN(12)
	}
	c.h, c.w = 1+r.IntN(14), 1+r.IntN(14)
	c.win = Window{
		Kernel:    [2]int{c.kh, c.kw},
		Strides:   [2]int{1 + r.IntN(3), 1 + r.IntN(3)},
		Pads:      [4]int{r.IntN(4), r.IntN(4), r.IntN(4), r.IntN(4)},
		Dilations: [2]int{1 + r.IntN(2), 1 + r.IntN(2)},
	}
	if r.IntN(3) == 0 { // the common geometry: stride 1, "same" padding
		c.win.Strides, c.win.Dilations = [2]int{1, 1}, [2]int{1, 1}
		c.win.Pads = [4]int{c.kh / 2, c.kw / 2, c.kh / 2, c.kw / 2}
	}
	if r.IntN(5) == 0 { // pointwise
		c.kh, c.kw = 1, 1
		c.win = Window{Kernel: [2]int{1, 1}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}}
	}
	return c
}

func TestConv2DU64Random(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	kernelModes(t, func(mode string) {
		done := 0
		for done < 300 {
			if checkConv(t, r, randConvCase(r)) {
				done++
			}
		}
	})
}

// TestConv2DU64Paths runs each special path at sizes where it is taken:
// per-image 1x1 products (oh·ow >= convPerImage), the batched 1x1 gather,
// depthwise split across goroutines, and layer shapes large enough for the
// product to be split.
func TestConv2DU64Paths(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	one := Window{Kernel: [2]int{1, 1}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}}
	same3 := Window{Kernel: [2]int{3, 3}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}, Pads: [4]int{1, 1, 1, 1}}
	down3 := same3
	down3.Strides = [2]int{2, 2}
	cases := []convCase{
		{n: 1, cg: 5, mg: 7, group: 1, kh: 1, kw: 1, h: 3, w: 3, win: one},      // 1x1, batch 1
		{n: 3, cg: 5, mg: 7, group: 1, kh: 1, kw: 1, h: 16, w: 17, win: one},    // 1x1 per image
		{n: 3, cg: 5, mg: 7, group: 1, kh: 1, kw: 1, h: 3, w: 5, win: one},      // 1x1 gathered
		{n: 2, cg: 3, mg: 4, group: 2, kh: 1, kw: 1, h: 16, w: 16, win: one},    // grouped 1x1 per image
		{n: 2, cg: 1, mg: 1, group: 96, kh: 3, kw: 3, h: 32, w: 32, win: down3}, // mobilenet depthwise, split
		{n: 1, cg: 1, mg: 2, group: 8, kh: 3, kw: 3, h: 9, w: 9, win: same3},    // depthwise multiplier 2
		{n: 1, cg: 1, mg: 1, group: 1, kh: 3, kw: 3, h: 9, w: 9, win: same3},    // one channel, not depthwise
		{n: 2, cg: 64, mg: 64, group: 1, kh: 3, kw: 3, h: 8, w: 8, win: same3},  // resnet layer
		{n: 1, cg: 3, mg: 64, group: 1, kh: 7, kw: 7, h: 32, w: 32,
			win: Window{Kernel: [2]int{7, 7}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, Pads: [4]int{3, 3, 3, 3}}}, // resnet conv1
		{n: 1, cg: 128, mg: 64, group: 1, kh: 3, kw: 3, h: 2, w: 2, win: same3}, // 2x2 pixels
		{n: 1, cg: 4, mg: 4, group: 1, kh: 3, kw: 3, h: 1, w: 1, win: same3},    // 1 pixel, all padding but the centre
		{n: 1, cg: 2, mg: 3, group: 1, kh: 2, kw: 2, h: 5, w: 5,
			win: Window{Kernel: [2]int{2, 2}, Strides: [2]int{3, 3}, Dilations: [2]int{2, 2}, Pads: [4]int{0, 2, 3, 1}}},
	}
	kernelModes(t, func(mode string) {
		for _, c := range cases {
			if !checkConv(t, r, c) {
				t.Fatalf("%v: window does not fit", c)
			}
		}
	})
}

func TestConv2DU64Errors(t *testing.T) {
	x, w := New[uint64](1, 2, 5, 5), New[uint64](3, 2, 2, 2)
	ceil := Window{Kernel: [2]int{2, 2}, Strides: [2]int{2, 2}, Dilations: [2]int{1, 1}, CeilMode: true}
	if _, err := Conv2D(x, w, ceil, 1); err == nil {
		t.Error("ceil mode: want error")
	}
	win := Window{Kernel: [2]int{2, 2}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}}
	if _, err := Conv2D(x, New[uint64](3, 3, 2, 2), win, 1); err == nil {
		t.Error("channel mismatch: want error")
	}
	if _, err := Conv2D(x, w, win, 0); err == nil {
		t.Error("group 0: want error")
	}
	if err := Conv2DU64Into(make([]uint64, 47), x, w, win, 1); err == nil {
		t.Error("short dst: want error")
	}
	if err := Conv2DU64Into(make([]uint64, 48), &Dense[uint64]{Shape: x.Shape}, w, win, 1); err == nil {
		t.Error("x without data: want error")
	}
	// an empty batch gives an empty output of the right shape
	out, err := Conv2D(New[uint64](0, 2, 5, 5), w, win, 1)
	if err != nil || !slices.Equal(out.Shape, []int{0, 3, 4, 4}) {
		t.Errorf("empty batch: %v %v", out, err)
	}
}

// TestConv2DFloatUnchanged checks that float64 keeps the generic im2col path
// (bit-identical to what it computed before the uint64 kernels).
func TestConv2DFloatUnchanged(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for range 30 {
		c := randConvCase(r)
		c.n = max(c.n, 1)
		if _, _, err := c.win.OutSize(c.h, c.w); err != nil {
			continue
		}
		x := New[float64](c.n, c.cg*c.group, c.h, c.w)
		w := New[float64](c.mg*c.group, c.cg, c.kh, c.kw)
		for i := range x.Data {
			x.Data[i] = r.NormFloat64()
		}
		for i := range w.Data {
			w.Data[i] = r.NormFloat64()
		}
		got, err := Conv2D(x, w, c.win, c.group)
		if err != nil {
			t.Fatal(err)
		}
		want := genericConvRef(x, w, c.win, c.group)
		if !slices.Equal(got.Data, want.Data) {
			t.Fatalf("%v: float64 Conv2D changed", c)
		}
	}
}

// genericConvRef is the generic Conv2D as it was before the uint64 kernels
// (im2col by index map, weight transpose, the naive product, scatter): the
// float64 reference, and the "before" of BenchmarkConv2DU64Generic.
func genericConvRef[T Number](x, w *Dense[T], win Window, group int) *Dense[T] {
	shape, _ := ConvShape(x.Shape, w.Shape, win, group)
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, oh, ow := shape[1], shape[2], shape[3]
	cg, mg := c/group, m/group
	kk := w.Shape[1] * w.Shape[2] * w.Shape[3]
	out := New[T](shape...)
	sub := New[T](n, cg, h, wd)
	plane := h * wd
	_, _, idx, _ := Im2ColIndex(sub.Shape, win)
	rows := n * oh * ow
	for g := range group {
		for b := range n {
			copy(sub.Data[b*cg*plane:(b+1)*cg*plane], x.Data[(b*c+g*cg)*plane:(b*c+(g+1)*cg)*plane])
		}
		cols, _ := Gather(sub, []int{rows, kk}, idx, 0)
		wt, _ := Transpose2D(&Dense[T]{Shape: []int{mg, kk}, Data: w.Data[g*mg*kk : (g+1)*mg*kk]})
		prod := make([]T, rows*mg)
		naiveMatMulInto(prod, cols.Data, wt.Data, rows, kk, mg)
		for r := range rows {
			b, pix := r/(oh*ow), r%(oh*ow)
			for j := range mg {
				out.Data[(b*m+g*mg+j)*oh*ow+pix] = prod[r*mg+j]
			}
		}
	}
	return out
}

// FuzzConv2DU64 fuzzes the geometry of a uint64 convolution (shapes,
// strides, pads, dilations, groups) against the direct loops.
func FuzzConv2DU64(f *testing.F) {
	f.Add(uint64(1), []byte{1, 3, 4, 1, 3, 3, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(uint64(2), []byte{2, 1, 1, 6, 3, 3, 9, 7, 2, 2, 1, 1, 1, 1, 1, 1})
	f.Add(uint64(3), []byte{3, 5, 7, 1, 1, 1, 16, 16, 1, 1, 0, 0, 0, 0, 1, 1})
	f.Add(uint64(4), []byte{1, 2, 3, 2, 7, 2, 5, 11, 3, 1, 3, 0, 2, 1, 2, 1})
	f.Fuzz(func(t *testing.T, seed uint64, g []byte) {
		if len(g) < 16 {
			t.Skip()
		}
		c := convCase{
			n: int(g[0] % 4), cg: 1 + int(g[1]%8), mg: 1 + int(g[2]%8), group: 1 + int(g[3]%6),
			kh: 1 + int(g[4]%7), kw: 1 + int(g[5]%7), h: 1 + int(g[6]%20), w: 1 + int(g[7]%20),
		}
		c.win = Window{
			Kernel:    [2]int{c.kh, c.kw},
			Strides:   [2]int{1 + int(g[8]%4), 1 + int(g[9]%4)},
			Pads:      [4]int{int(g[10] % 4), int(g[11] % 4), int(g[12] % 4), int(g[13] % 4)},
			Dilations: [2]int{1 + int(g[14]%3), 1 + int(g[15]%3)},
		}
		r := rand.New(rand.NewPCG(seed, 2))
		kernelModes(t, func(mode string) {
			checkConv(t, r, c)
		})
	})
}
