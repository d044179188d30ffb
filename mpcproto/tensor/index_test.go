package tensor

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestReshape(t *testing.T) {
	x := New[float64](2, 3)
	if _, err := x.Reshape(3, 2); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]int{{4, 2}, {-2, -3}, {5}} {
		if _, err := x.Reshape(bad...); err == nil {
			t.Errorf("reshape to %v: want error", bad)
		}
	}
}

func TestTranspose2D(t *testing.T) {
	x, _ := From([]int{2, 3}, []int64{1, 2, 3, 4, 5, 6})
	y, err := Transpose2D(x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y.Shape, []int{3, 2}) || !slices.Equal(y.Data, []int64{1, 4, 2, 5, 3, 6}) {
		t.Fatalf("got %v %v", y.Shape, y.Data)
	}
	if _, err := Transpose2D(New[int64](2, 2, 2)); err == nil {
		t.Fatal("3-D transpose: want error")
	}
}

func TestBroadcast(t *testing.T) {
	tests := []struct {
		a, b, want []int
		ok         bool
	}{
		{[]int{2, 3}, []int{3}, []int{2, 3}, true},
		{[]int{2, 1}, []int{1, 4}, []int{2, 4}, true},
		{[]int{}, []int{5}, []int{5}, true},
		{[]int{3, 1, 2}, []int{4, 1}, []int{3, 4, 2}, true},
		{[]int{2, 3}, []int{2}, nil, false},
	}
	for _, tc := range tests {
		got, err := BroadcastShape(tc.a, tc.b)
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(got, tc.want)) {
			t.Errorf("BroadcastShape(%v, %v) = %v, %v; want %v ok=%v", tc.a, tc.b, got, err, tc.want, tc.ok)
		}
	}
	// check the index map against a naive coordinate computation
	from, to := []int{3, 1, 2}, []int{2, 3, 4, 2}
	idx, err := BroadcastIndex(from, to)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for a := range 2 {
		for b := range 3 {
			for c := range 4 {
				for d := range 2 {
					_, _ = a, c
					if want := b*2 + d; idx[i] != want {
						t.Fatalf("index %d = %d, want %d", i, idx[i], want)
					}
					i++
				}
			}
		}
	}
	if _, err := BroadcastIndex([]int{3}, []int{4}); err == nil {
		t.Fatal("broadcast 3 to 4: want error")
	}
}

func TestPad(t *testing.T) {
	x, _ := From([]int{2, 2}, []float64{1, 2, 3, 4})
	y, err := Pad(x, []int{1, 0, 0, 2}, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9}
	if !slices.Equal(y.Shape, []int{3, 4}) || !slices.Equal(y.Data, want) {
		t.Fatalf("got %v %v", y.Shape, y.Data)
	}
	if _, err := Pad(x, []int{1, 1}, 0); err == nil {
		t.Fatal("wrong pads count: want error")
	}
	if _, err := Pad(x, []int{-1, 0, 0, 0}, 0); err == nil {
		t.Fatal("negative pads: want error")
	}
}

func TestWindowOutSize(t *testing.T) {
	tests := []struct {
		name       string
		h, k, s, p int
		d          int
		ceil       bool
		want       int
		wantErr    bool
	}{
		{"plain", 5, 3, 1, 0, 1, false, 3, false},
		{"pad", 5, 3, 1, 1, 1, false, 5, false},
		{"stride", 6, 2, 2, 0, 1, false, 3, false},
		{"floor", 7, 2, 2, 0, 1, false, 3, false},
		{"ceil", 7, 2, 2, 0, 1, true, 4, false},
		{"ceil drop window in padding", 4, 2, 3, 1, 1, true, 2, false},
		{"dilation", 7, 3, 1, 0, 2, false, 3, false},
		{"too big", 2, 3, 1, 0, 1, false, 0, true},
	}
	for _, tc := range tests {
		w, err := NewWindow([]int{tc.k, tc.k}, []int{tc.s, tc.s}, []int{tc.p, tc.p, tc.p, tc.p}, []int{tc.d, tc.d}, tc.ceil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		oh, ow, err := w.OutSize(tc.h, tc.h)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if !tc.wantErr && (oh != tc.want || ow != tc.want) {
			t.Errorf("%s: got %dx%d want %d", tc.name, oh, ow, tc.want)
		}
	}
	if _, err := NewWindow([]int{2}, nil, nil, nil, false); err == nil {
		t.Error("1-value kernel: want error")
	}
	if _, err := NewWindow([]int{2, 2}, []int{0, 1}, nil, nil, false); err == nil {
		t.Error("zero stride: want error")
	}
}

// naiveConv is a direct 7-loop convolution, the reference for Conv2D.
func naiveConv(x, w *Dense[float64], win Window, group int) *Dense[float64] {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	oh, ow, _ := win.OutSize(h, wd)
	cg, mg := c/group, m/group
	out := New[float64](n, m, oh, ow)
	for b := range n {
		for o := range m {
			g := o / mg
			for y := range oh {
				for xx := range ow {
					var s float64
					for ci := range cg {
						for i := range kh {
							for j := range kw {
								iy := y*win.Strides[0] - win.Pads[0] + i*win.Dilations[0]
								ix := xx*win.Strides[1] - win.Pads[1] + j*win.Dilations[1]
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								s += x.Data[((b*c+g*cg+ci)*h+iy)*wd+ix] * w.Data[((o*cg+ci)*kh+i)*kw+j]
							}
						}
					}
					out.Data[((b*m+o)*oh+y)*ow+xx] = s
				}
			}
		}
	}
	return out
}

func randDense(r *rand.Rand, shape ...int) *Dense[float64] {
	t := New[float64](shape...)
	for i := range t.Data {
		t.Data[i] = float64(r.IntN(7) - 3)
	}
	return t
}

func TestConv2DAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := range 60 {
		group := 1 + r.IntN(2)
		n, cg, mg := 1+r.IntN(2), 1+r.IntN(2), 1+r.IntN(3)
		kh, kw := 1+r.IntN(3), 1+r.IntN(3)
		s := []int{1 + r.IntN(2), 1 + r.IntN(2)}
		d := []int{1 + r.IntN(2), 1 + r.IntN(2)}
		p := []int{r.IntN(2), r.IntN(2), r.IntN(2), r.IntN(2)}
		h, wd := 3+r.IntN(4), 3+r.IntN(4)
		win, err := NewWindow([]int{kh, kw}, s, p, d, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := win.OutSize(h, wd); err != nil {
			continue
		}
		x := randDense(r, n, cg*group, h, wd)
		w := randDense(r, mg*group, cg, kh, kw)
		got, err := Conv2D(x, w, win, group)
		if err != nil {
			t.Fatalf("case %d: %v", it, err)
		}
		want := naiveConv(x, w, win, group)
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) {
			t.Fatalf("case %d (win %+v group %d): got %v want %v", it, win, group, got, want)
		}
	}
	win, _ := NewWindow([]int{2, 2}, nil, nil, nil, false)
	if _, err := Conv2D(New[float64](1, 3, 4, 4), New[float64](2, 2, 2, 2), win, 1); err == nil {
		t.Fatal("channel mismatch: want error")
	}
}

func TestWindowIndex(t *testing.T) {
	x, _ := From([]int{1, 1, 3, 3}, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	win, _ := NewWindow([]int{2, 2}, []int{2, 2}, []int{0, 0, 1, 1}, nil, false)
	oh, ow, idx, err := WindowIndex(x.Shape, win)
	if err != nil {
		t.Fatal(err)
	}
	if oh != 2 || ow != 2 {
		t.Fatalf("out %dx%d", oh, ow)
	}
	// kernel position 0 of each window: pixels (0,0),(0,2),(2,0),(2,2); position 3: (1,1),pad,pad,pad
	if want := []int{0, 2, 6, 8}; !slices.Equal(idx[:4], want) {
		t.Fatalf("k0 = %v want %v", idx[:4], want)
	}
	if want := []int{4, -1, -1, -1}; !slices.Equal(idx[12:], want) {
		t.Fatalf("k3 = %v want %v", idx[12:], want)
	}
}

func TestMatMul(t *testing.T) {
	a, _ := From([]int{2, 2}, []uint64{1, 2, 3, 4})
	b, _ := From([]int{2, 1}, []uint64{5, ^uint64(0)}) // -1 in the ring
	c, err := MatMul(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{3, 11}; !slices.Equal(c.Data, want) {
		t.Fatalf("got %v want %v", c.Data, want)
	}
	if _, err := MatMul(a, New[uint64](3, 1)); err == nil {
		t.Fatal("mismatch: want error")
	}
}

func TestIm2Col(t *testing.T) {
	x, _ := From([]int{1, 1, 2, 3}, []float64{1, 2, 3, 4, 5, 6})
	win, _ := NewWindow([]int{2, 2}, nil, []int{0, 0, 0, 1}, nil, false)
	cols, err := Im2Col(x, win)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 2, 4, 5, 2, 3, 5, 6, 3, 0, 6, 0}
	if !slices.Equal(cols.Shape, []int{3, 4}) || !slices.Equal(cols.Data, want) {
		t.Fatalf("got %v %v", cols.Shape, cols.Data)
	}
	if _, err := Im2Col(New[float64](2, 2), win); err == nil {
		t.Fatal("2-D input: want error")
	}
}
