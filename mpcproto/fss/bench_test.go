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
			k := newBenchKeys(tc.bits, tc.width)
			cpu0 := cpuTime()
			for b.Loop() {
				if err := GenBatch(k.alphas, k.betas, tc.bits, tc.width, k.r0, k.r1, k.cws); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/benchKeys, "cpu-ns/key")
			b.ReportMetric(float64(8*KeyWords(tc.bits, tc.width)+16), "keyB/party")
		})
	}
}

func BenchmarkEval(b *testing.B) {
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			k := newBenchKeys(tc.bits, tc.width)
			if err := GenBatch(k.alphas, k.betas, tc.bits, tc.width, k.r0, k.r1, k.cws); err != nil {
				b.Fatal(err)
			}
			out := make([]uint64, benchKeys*tc.width)
			cpu0 := cpuTime()
			for b.Loop() {
				if err := EvalBatch(0, k.r0, k.cws, tc.bits, tc.width, k.xs, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/benchKeys, "cpu-ns/key")
		})
	}
}

// benchBatch is a batch of benchKeys random keys' inputs (seeded).
type benchBatch struct {
	alphas, betas, xs, cws []uint64
	r0, r1                 []Seed
}

func newBenchKeys(bits, width int) benchBatch {
	rng := rand.New(rand.NewPCG(1, 1))
	k := benchBatch{alphas: make([]uint64, benchKeys), betas: make([]uint64, benchKeys*width), xs: make([]uint64, benchKeys),
		cws: make([]uint64, benchKeys*KeyWords(bits, width)), r0: make([]Seed, benchKeys), r1: make([]Seed, benchKeys)}
	for i := range k.alphas {
		k.alphas[i], k.r0[i], k.r1[i], k.xs[i] = rng.Uint64(), randSeed(rng), randSeed(rng), rng.Uint64()
	}
	return k
}

var benchCases = []struct {
	name        string
	bits, width int
}{
	{"truncrelu-62x3", 62, 3},
	{"relu-63x2", 63, 2},
	{"relu-47x2", 47, 2},
}
