package fss

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far: the benchmarks
// report CPU time per key, which does not depend on the machine's load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchKeys is the batch of the benchmarks: a layer's comparisons.
const benchKeys = 256

// BenchmarkGen and BenchmarkEval measure a batch of benchKeys DCF key
// pairs' generation (the dealer's cost per comparison, ns/key) and one
// party's evaluation of them, for the sign gates the engine uses:
// k-1 = 62 input bits (truncation fused with ReLU, width 3), 63 (ReLU on
// any value, width 2) and 47 (ReLU on a value known to be below 2^47).
func BenchmarkGen(b *testing.B) {
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			kw := KeyWords(tc.bits, tc.width)
			cws := make([]uint64, benchKeys*kw)
			betas := make([]uint64, benchKeys*tc.width)
			alphas, r0, r1 := make([]uint64, benchKeys), make([]Seed, benchKeys), make([]Seed, benchKeys)
			for i := range alphas {
				alphas[i], r0[i], r1[i] = rng.Uint64(), randSeed(rng), randSeed(rng)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if err := GenBatch(alphas, betas, tc.bits, tc.width, r0, r1, cws); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/benchKeys, "cpu-ns/key")
			b.ReportMetric(float64(8*kw+16), "keyB/party")
		})
	}
}

func BenchmarkEval(b *testing.B) {
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			kw := KeyWords(tc.bits, tc.width)
			cws := make([]uint64, benchKeys*kw)
			alphas, r0, r1 := make([]uint64, benchKeys), make([]Seed, benchKeys), make([]Seed, benchKeys)
			xs := make([]uint64, benchKeys)
			for i := range alphas {
				alphas[i], r0[i], r1[i], xs[i] = rng.Uint64(), randSeed(rng), randSeed(rng), rng.Uint64()
			}
			if err := GenBatch(alphas, make([]uint64, benchKeys*tc.width), tc.bits, tc.width, r0, r1, cws); err != nil {
				b.Fatal(err)
			}
			out := make([]uint64, benchKeys*tc.width)
			cpu0 := cpuTime()
			for b.Loop() {
				if err := EvalBatch(0, r0, cws, tc.bits, tc.width, xs, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/benchKeys, "cpu-ns/key")
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
