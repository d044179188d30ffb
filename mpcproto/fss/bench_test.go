package fss

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkGen and BenchmarkEval measure one DCF key pair's generation
// (the dealer's cost per comparison) and one party's evaluation of a key,
// for the sign gates the engine uses: k-1 = 62 input bits (truncation
// fused with ReLU, width 3), 63 (ReLU on any value, width 2) and 47 (ReLU
// on a truncated value at 16 fractional bits).
func BenchmarkGen(b *testing.B) {
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			cw := make([]uint64, KeyWords(tc.bits, tc.width))
			beta := make([]uint64, tc.width)
			roots := [2]Seed{randSeed(rng), randSeed(rng)}
			for b.Loop() {
				if err := Gen(rng.Uint64(), beta, tc.bits, roots, cw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(8*len(cw)+16), "keyB/party")
		})
	}
}

func BenchmarkEval(b *testing.B) {
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			cw := make([]uint64, KeyWords(tc.bits, tc.width))
			roots := [2]Seed{randSeed(rng), randSeed(rng)}
			if err := Gen(rng.Uint64(), make([]uint64, tc.width), tc.bits, roots, cw); err != nil {
				b.Fatal(err)
			}
			out := make([]uint64, tc.width)
			x := rng.Uint64()
			for b.Loop() {
				x++
				if err := Eval(0, roots[0], cw, tc.bits, x, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchCases = []struct {
	name        string
	bits, width int
}{
	{"truncrelu-62x3", 62, 3},
	{"relu-63x2", 63, 2},
	{"relu-47x2", 47, 2},
}
