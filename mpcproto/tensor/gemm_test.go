package tensor

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// kernelModes runs f once per micro-kernel implementation available here
// (the assembly kernels when the CPU has them, and always the portable Go
// ones), restoring the default afterwards.
func kernelModes(t testing.TB, f func(mode string)) {
	def := useAsm
	defer func() { useAsm = def }()
	if def {
		useAsm = true
		f("asm")
	}
	useAsm = false
	f("go")
}

// checkMatMul compares MatMulU64Into (and MatMulInto on uint64) with the
// naive loop on random full-range words, so every product and sum wraps,
// accumulating into a random dst that is longer than m*n.
func checkMatMul(t testing.TB, r *rand.Rand, m, k, n int) {
	t.Helper()
	a, b := randU64(r, m*k+r.IntN(3)), randU64(r, k*n+r.IntN(3))
	init := randU64(r, m*n+2)
	want := slices.Clone(init)
	naiveMatMulInto(want, a, b, m, k, n)
	got := slices.Clone(init)
	MatMulU64Into(got, a, b, m, k, n)
	if !slices.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("[%d,%d]x[%d,%d]: element %d (row %d col %d) = %#x, want %#x",
			m, k, k, n, i, i/max(n, 1), i%max(n, 1), got[i], want[i])
	}
	got = slices.Clone(init)
	MatMulInto(got, a, b, m, k, n)
	if !slices.Equal(got, want) {
		t.Fatalf("MatMulInto [%d,%d]x[%d,%d] differs from the reference", m, k, k, n)
	}
}

func TestMatMulU64Edges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17}
	kernelModes(t, func(mode string) {
		for _, m := range sizes {
			for _, k := range sizes {
				for _, n := range sizes {
					checkMatMul(t, r, m, k, n)
				}
			}
		}
	})
}

// TestMatMulU64Blocks crosses the block sizes (k past gemmKC, columns past
// gemmNC, rows past gemmMC) and the multi-core split, with sizes just off
// the block multiples.
func TestMatMulU64Blocks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shapes := [][3]int{
		{4, gemmKC + 1, 4},
		{5, 2*gemmKC - 1, 9},
		{1, 3*gemmKC + 5, 13},
		{3, 1000, 515},
		{gemmMC + 3, 17, gemmNC + 5},
		{2*gemmMC + 1, gemmKC + 3, 21},
		{1, 784, 128},
		{8, 784, 128},
		{2, 2048, 130}, // few rows, B streamed, 2 tail columns
		{1, 4099, 67},  // B streamed, k not a multiple of the 16 rows per call
		{3, 700, 400},  // B streamed, 3 rows
		{1, 512, 1000}, // a classifier at batch 1
		{4, 4608, 36},
		{130, 300, 6},   // tall: rows split across goroutines
		{7, 300, 600},   // wide: columns split
		{1, 50000, 3},   // very long k, below the split threshold in width
		{600, 1, 600},   // k = 1
		{33, 64, 1031},  // n one past a multiple of 8
		{513, 129, 2},   // two columns
		{64, 576, 4},    // conv output of 2x2 pixels
		{1024, 147, 64}, // resnet18 conv1 im2col
	}
	kernelModes(t, func(mode string) {
		for _, s := range shapes {
			checkMatMul(t, r, s[0], s[1], s[2])
		}
	})
}

// TestMatMulU64Random draws random shapes, some large enough to be split
// across goroutines, under 1, 2 and 3 procs.
func TestMatMulU64Random(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	kernelModes(t, func(mode string) {
		for _, procs := range []int{1, 2, 3} {
			runtime.GOMAXPROCS(procs)
			for range 40 {
				m, k, n := 1+r.IntN(90), 1+r.IntN(700), 1+r.IntN(90)
				if r.IntN(4) == 0 {
					m = 1 + r.IntN(3)
				}
				checkMatMul(t, r, m, k, n)
			}
		}
	})
}

// TestMatMulU64Wrap checks products of words at the ring's edges: -1, 2^63,
// 2^32±1, whose 32-bit halves exercise every cross term of the kernels.
func TestMatMulU64Wrap(t *testing.T) {
	edge := []uint64{0, 1, ^uint64(0), 1 << 63, 1<<32 - 1, 1 << 32, 1<<32 + 1, 0xffffffff00000000, 0x8000000080000000}
	r := rand.New(rand.NewPCG(9, 10))
	kernelModes(t, func(mode string) {
		for _, s := range [][3]int{{4, 9, 4}, {5, 300, 11}, {1, 40, 8}, {9, 9, 9}} {
			m, k, n := s[0], s[1], s[2]
			a, b := make([]uint64, m*k), make([]uint64, k*n)
			for i := range a {
				a[i] = edge[r.IntN(len(edge))]
			}
			for i := range b {
				b[i] = edge[r.IntN(len(edge))]
			}
			want, got := make([]uint64, m*n), make([]uint64, m*n)
			naiveMatMulInto(want, a, b, m, k, n)
			MatMulU64Into(got, a, b, m, k, n)
			if !slices.Equal(got, want) {
				t.Fatalf("%s %v: edge words differ", mode, s)
			}
		}
	})
	// all -1: each entry is k·1 = k
	a, b := make([]uint64, 4*5), make([]uint64, 5*4)
	for i := range a {
		a[i] = ^uint64(0)
	}
	copy(b, a)
	got := make([]uint64, 16)
	MatMulU64Into(got, a, b, 4, 5, 4)
	for _, v := range got {
		if v != 5 {
			t.Fatalf("(-1)·(-1) summed 5 times = %d", v)
		}
	}
}

func TestMatMulU64Panics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		d, a, b int
		m, k, n int
	}{
		{"short dst", 3, 4, 4, 2, 2, 2},
		{"short a", 4, 3, 4, 2, 2, 2},
		{"short b", 4, 4, 3, 2, 2, 2},
		{"negative", 4, 4, 4, -1, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			MatMulU64Into(make([]uint64, tc.d), make([]uint64, tc.a), make([]uint64, tc.b), tc.m, tc.k, tc.n)
		})
	}
	// empty products are no-ops, whatever the slices
	MatMulU64Into(nil, nil, make([]uint64, 15), 0, 5, 3)
	MatMulU64Into(nil, make([]uint64, 3), nil, 3, 1, 0)
	d := []uint64{7, 7}
	MatMulU64Into(d, nil, nil, 1, 0, 2)
	if d[0] != 7 || d[1] != 7 {
		t.Fatal("k = 0 changed dst")
	}
}

// TestMatMulOtherTypesNaive checks that float64 and int64 keep the naive
// loop (the plaintext twin's reference arithmetic): bit-identical results,
// including the float64 summation order.
func TestMatMulOtherTypesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	m, k, n := 7, 300, 9
	af, bf := make([]float64, m*k), make([]float64, k*n)
	for i := range af {
		af[i] = r.NormFloat64() * 1e3
	}
	for i := range bf {
		bf[i] = r.NormFloat64() * 1e-3
	}
	want, got := make([]float64, m*n), make([]float64, m*n)
	naiveMatMulInto(want, af, bf, m, k, n)
	MatMulInto(got, af, bf, m, k, n)
	if !slices.Equal(got, want) {
		t.Fatal("float64 MatMulInto is not the naive loop")
	}
	ai, bi := make([]int64, m*k), make([]int64, k*n)
	for i := range ai {
		ai[i] = int64(r.Uint64())
	}
	for i := range bi {
		bi[i] = int64(r.Uint64())
	}
	wi, gi := make([]int64, m*n), make([]int64, m*n)
	naiveMatMulInto(wi, ai, bi, m, k, n)
	MatMulInto(gi, ai, bi, m, k, n)
	if !slices.Equal(gi, wi) {
		t.Fatal("int64 MatMulInto differs from the naive loop")
	}
}

// FuzzMatMulU64 fuzzes the shape (and the data seed) of the uint64 product
// against the naive loop, on both kernel implementations.
func FuzzMatMulU64(f *testing.F) {
	for _, s := range [][4]uint16{{0, 0, 0, 0}, {1, 1, 1, 1}, {4, 4, 4, 2}, {5, 257, 9, 3}, {1, 784, 128, 4}, {67, 33, 515, 5}, {3, 2, 1, 6}} {
		f.Add(s[0], s[1], s[2], uint64(s[3]))
	}
	f.Fuzz(func(t *testing.T, m, k, n uint16, seed uint64) {
		mm, kk, nn := int(m%160), int(k%1200), int(n%600)
		if mm*kk*nn > 1<<22 {
			t.Skip("too large")
		}
		r := rand.New(rand.NewPCG(seed, 1))
		kernelModes(t, func(mode string) {
			checkMatMul(t, r, mm, kk, nn)
		})
	})
}

func ExampleMatMulU64Into() {
	a := []uint64{1, 2, 3, 4}    // [[1 2] [3 4]]
	b := []uint64{5, ^uint64(0)} // [5, -1]
	c := make([]uint64, 2)
	MatMulU64Into(c, a, b, 2, 2, 1) // 1·5 + 2·(-1), 3·5 + 4·(-1)
	fmt.Println(c)
	// Output: [3 11]
}
