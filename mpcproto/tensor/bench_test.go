package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Layer-like shapes of the share products. Gop/s counts 2·m·k·n operations
// (one multiply and one add per term) over the wall time, so it is
// comparable across shapes; on ring elements both are uint64 operations.

type mmShape struct {
	name    string
	m, k, n int
}

// matmulShapes are the MatMuls of the 784-128-128-10 MLP and the im2col
// products ([n·oh·ow, c·kH·kW] x [c·kH·kW, m]) of resnet18 at 64x64, batch 1
// and batch 8 (rows ×8).
var matmulShapes = func() []mmShape {
	base := []mmShape{
		{"mlp784x128", 1, 784, 128},
		{"mlp128x128", 1, 128, 128},
		{"r18conv1_7x7s2", 1024, 147, 64},     // 3->64 7x7 stride 2, 64x64 -> 32x32
		{"r18l1_3x3_64", 256, 576, 64},        // 64->64 3x3 at 16x16
		{"conv3x3_64_8x8", 64, 576, 64},       // 64->64 3x3 at 8x8
		{"r18l2_3x3s2_64to128", 64, 576, 128}, // 64->128 3x3 stride 2, 16x16 -> 8x8
		{"r18l2_3x3_128", 64, 1152, 128},      // 128->128 3x3 at 8x8
		{"r18l3_3x3_256", 16, 2304, 256},      // 256->256 3x3 at 4x4
		{"r18l4_3x3_512", 4, 4608, 512},       // 512->512 3x3 at 2x2
		{"r18fc512x1000", 1, 512, 1000},
	}
	var out []mmShape
	for _, batch := range []int{1, 8} {
		for _, s := range base {
			s.name = fmt.Sprintf("%s/b%d", s.name, batch)
			s.m *= batch
			out = append(out, s)
		}
	}
	return append(out, mmShape{"mlp784x128/b100", 100, 784, 128})
}()

func randU64(r *rand.Rand, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.Uint64()
	}
	return out
}

func reportGops(b *testing.B, ops float64) {
	b.ReportMetric(ops*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "Gop/s")
}

// BenchmarkMatMulU64 times MatMulInto on ring elements (the path the dealer's
// C = A·B and the engine's E·B, A·F take).
func BenchmarkMatMulU64(b *testing.B) {
	for _, s := range matmulShapes {
		b.Run(s.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			x, y := randU64(r, s.m*s.k), randU64(r, s.k*s.n)
			dst := make([]uint64, s.m*s.n)
			b.ResetTimer()
			for b.Loop() {
				MatMulInto(dst, x, y, s.m, s.k, s.n)
			}
			reportGops(b, 2*float64(s.m*s.k*s.n))
		})
	}
}

// BenchmarkMatMulU64Naive is the reference i-k-j loop on the same shapes,
// measured in the same run for a like-for-like comparison.
func BenchmarkMatMulU64Naive(b *testing.B) {
	for _, s := range matmulShapes {
		b.Run(s.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			x, y := randU64(r, s.m*s.k), randU64(r, s.k*s.n)
			dst := make([]uint64, s.m*s.n)
			b.ResetTimer()
			for b.Loop() {
				naiveMatMulInto(dst, x, y, s.m, s.k, s.n)
			}
			reportGops(b, 2*float64(s.m*s.k*s.n))
		})
	}
}

type convLayer struct {
	name                string
	c, h, m, k, s, p, g int // in channels, square input size, out channels, square kernel, stride, pad, group
}

// convLayers are layers of resnet18 and mobilenet_v2 at 64x64 input.
var convLayers = []convLayer{
	{"r18conv1_7x7s2", 3, 64, 64, 7, 2, 3, 1},
	{"r18l1_3x3_64", 64, 16, 64, 3, 1, 1, 1},
	{"r18l2_3x3s2_64to128", 64, 16, 128, 3, 2, 1, 1},
	{"r18l2_1x1s2_down", 64, 16, 128, 1, 2, 0, 1},
	{"r18l2_3x3_128", 128, 8, 128, 3, 1, 1, 1},
	{"r18l3_3x3_256", 256, 4, 256, 3, 1, 1, 1},
	{"r18l4_3x3_512", 512, 2, 512, 3, 1, 1, 1},
	{"mbv2_1x1_16to96", 16, 32, 96, 1, 1, 0, 1},
	{"mbv2_1x1_96to24", 96, 16, 24, 1, 1, 0, 1},
	{"mbv2_dw3x3_96s2", 96, 32, 96, 3, 2, 1, 96},
	{"mbv2_dw3x3_144", 144, 16, 144, 3, 1, 1, 144},
}

// BenchmarkConv2DU64 times Conv2D on ring elements at batch 1 and 8.
func BenchmarkConv2DU64(b *testing.B) {
	benchConv(b, func(x, w *Dense[uint64], win Window, group int) {
		if _, err := Conv2D(x, w, win, group); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkConv2DU64Generic is the generic Conv2D as it was before the
// uint64 kernels (index-map im2col, naive product), on the same layers.
func BenchmarkConv2DU64Generic(b *testing.B) {
	benchConv(b, func(x, w *Dense[uint64], win Window, group int) {
		genericConvRef(x, w, win, group)
	})
}

func benchConv(b *testing.B, conv func(x, w *Dense[uint64], win Window, group int)) {
	for _, batch := range []int{1, 8} {
		for _, l := range convLayers {
			b.Run(fmt.Sprintf("%s/b%d", l.name, batch), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				win, err := NewWindow([]int{l.k, l.k}, []int{l.s, l.s}, []int{l.p, l.p, l.p, l.p}, nil, false)
				if err != nil {
					b.Fatal(err)
				}
				x := &Dense[uint64]{Shape: []int{batch, l.c, l.h, l.h}, Data: randU64(r, batch*l.c*l.h*l.h)}
				w := &Dense[uint64]{Shape: []int{l.m, l.c / l.g, l.k, l.k}, Data: randU64(r, l.m*l.c/l.g*l.k*l.k)}
				shape, err := ConvShape(x.Shape, w.Shape, win, l.g)
				if err != nil {
					b.Fatal(err)
				}
				ops := 2 * float64(Size(shape)*l.c/l.g*l.k*l.k)
				b.ResetTimer()
				for b.Loop() {
					conv(x, w, win, l.g)
				}
				reportGops(b, ops)
			})
		}
	}
}
