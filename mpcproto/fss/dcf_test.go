package fss

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func randSeed(rng *rand.Rand) Seed { return Seed{rng.Uint64(), rng.Uint64()} }

// reconstruct evaluates both keys at x and adds the shares.
func reconstruct(t *testing.T, keys [2]*Key, x uint64) []uint64 {
	t.Helper()
	out := make([]uint64, keys[0].Width)
	for b := range 2 {
		v := make([]uint64, keys[b].Width)
		if err := keys[b].Eval(x, v); err != nil {
			t.Fatal(err)
		}
		for j := range v {
			out[j] += v[j]
		}
	}
	return out
}

// inputs are the points a DCF on bits-bit inputs is checked at: the
// domain's ends, alpha and its neighbours, and random points.
func inputs(rng *rand.Rand, alpha uint64, bits int) []uint64 {
	top := low(^uint64(0), bits)
	xs := []uint64{0, 1, top, top - 1, alpha, alpha - 1, alpha + 1, 1 << (bits - 1), 1<<(bits-1) - 1}
	for range 20 {
		xs = append(xs, rng.Uint64())
	}
	for i := range xs {
		xs[i] = low(xs[i], bits)
	}
	return xs
}

func TestDCFMatchesComparison(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ bits, width int }{
		{1, 1}, {2, 1}, {3, 2}, {8, 3}, {39, 2}, {47, 3}, {62, 3}, {63, 4}, {64, 1}, {64, 4},
	} {
		for trial := range 6 {
			alpha := low(rng.Uint64(), tc.bits)
			switch trial {
			case 0:
				alpha = 0
			case 1:
				alpha = low(^uint64(0), tc.bits)
			}
			beta := make([]uint64, tc.width)
			for j := range beta {
				beta[j] = rng.Uint64()
			}
			keys, err := NewKeys(alpha, beta, tc.bits, [2]Seed{randSeed(rng), randSeed(rng)})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range inputs(rng, alpha, tc.bits) {
				got := reconstruct(t, keys, x)
				for j := range got {
					want := uint64(0)
					if x < alpha {
						want = beta[j]
					}
					if got[j] != want {
						t.Fatalf("bits %d width %d alpha %#x x %#x word %d: got %#x, want %#x",
							tc.bits, tc.width, alpha, x, j, got[j], want)
					}
				}
			}
		}
	}
}

// TestEvalBatchMatchesEval: a batch generated at once and evaluated at
// once, or in ranges, gives what each key gives alone (Layout.Key) and
// the plaintext comparison.
func TestEvalBatchMatchesEval(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, bits, width = 17, 40, 3
	y := Layout{Bits: bits, Width: width, Keys: n}
	cws := make([]uint64, y.Words())
	alphas, betas := make([]uint64, n), make([]uint64, n*width)
	r0, r1, xs := make([]Seed, n), make([]Seed, n), make([]uint64, n)
	for i := range n {
		alphas[i], r0[i], r1[i], xs[i] = low(rng.Uint64(), bits), randSeed(rng), randSeed(rng), low(rng.Uint64(), bits)
		if i%3 == 0 {
			xs[i] = alphas[i] - uint64(i%2) // at alpha and just below
		}
		for j := range width {
			betas[i*width+j] = rng.Uint64()
		}
	}
	if err := GenBatch(alphas, betas, bits, width, r0, r1, cws); err != nil {
		t.Fatal(err)
	}
	split := make([]uint64, y.Words()) // the same keys generated in two ranges
	for _, r := range [][2]int{{0, 6}, {6, n}} {
		lo, hi := r[0], r[1]
		if err := GenRange(y, split, lo, alphas[lo:hi], betas[lo*width:hi*width], r0[lo:hi], r1[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(split, cws) {
		t.Fatal("GenRange over two ranges differs from GenBatch")
	}
	var got [2][]uint64
	for p, roots := range [2][]Seed{r0, r1} {
		got[p] = make([]uint64, n*width)
		if err := EvalBatch(p, roots, cws, bits, width, xs, got[p]); err != nil {
			t.Fatal(err)
		}
		part := make([]uint64, 5*width) // keys 7..11 alone
		if err := EvalRange(p, y, cws, 7, roots[7:12], xs[7:12], part); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(part, got[p][7*width:12*width]) {
			t.Fatalf("party %d: EvalRange differs from EvalBatch", p)
		}
		for i := range n {
			one := make([]uint64, width)
			if err := Eval(p, roots[i], y.Key(cws, i), bits, xs[i], one); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(one, got[p][i*width:(i+1)*width]) {
				t.Fatalf("party %d key %d: batch and single evaluations differ", p, i)
			}
		}
	}
	for i := range n {
		for j := range width {
			want := uint64(0)
			if xs[i] < alphas[i] {
				want = betas[i*width+j]
			}
			if s := got[0][i*width+j] + got[1][i*width+j]; s != want {
				t.Fatalf("key %d word %d: %#x, want %#x", i, j, s, want)
			}
		}
	}
	if err := EvalBatch(0, r0[1:], cws, bits, width, xs, got[0]); !errors.Is(err, ErrParams) {
		t.Fatalf("short roots: %v, want ErrParams", err)
	}
	if err := EvalRange(0, y, cws, 15, r0[:5], xs[:5], got[0][:5*width]); !errors.Is(err, ErrParams) {
		t.Fatalf("range past the batch: %v, want ErrParams", err)
	}
}

func TestParamsRefused(t *testing.T) {
	for _, tc := range []struct {
		name        string
		bits, width int
		cw          int
	}{
		{"zero bits", 0, 1, 1},
		{"too many bits", 65, 1, KeyWords(65, 1)},
		{"zero width", 8, 0, KeyWords(8, 0)},
		{"too wide", 8, MaxWidth + 1, KeyWords(8, MaxWidth+1)},
		{"short cw", 8, 2, KeyWords(8, 2) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cw := make([]uint64, max(tc.cw, 0))
			beta := make([]uint64, tc.width)
			if err := Gen(1, beta, tc.bits, [2]Seed{}, cw); !errors.Is(err, ErrParams) {
				t.Fatalf("Gen: %v, want ErrParams", err)
			}
			if err := Eval(0, Seed{}, cw, tc.bits, 1, beta); !errors.Is(err, ErrParams) {
				t.Fatalf("Eval: %v, want ErrParams", err)
			}
		})
	}
	if err := Eval(2, Seed{}, make([]uint64, KeyWords(8, 1)), 8, 0, make([]uint64, 1)); !errors.Is(err, ErrParams) {
		t.Fatalf("party 2: %v, want ErrParams", err)
	}
}
