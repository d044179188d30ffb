package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fss"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// benchSession deploys the model once (sharing the weights, and opening
// the weight masks when masked) and runs one inference per iteration,
// reporting per inference: online rounds, bytes sent per party (the most
// loaded party: party 0, whose first round also carries a 32-byte output
// re-randomisation seed to each later party), the online time (slowest
// party), the dealer's time, the parties' bundle expansion time, and the
// dealer's bytes (all bundles).
func benchSession(b *testing.B, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64], n int, masked bool, extra ...Option) {
	ctx := context.Background()
	opts := extra
	if masked {
		opts = append(opts, WithWeightMasks())
	}
	l, err := NewLocal(ctx, p, w, n, opts...)
	if err != nil {
		b.Fatal(err)
	}
	var online, dealer, offline time.Duration
	var st Stats
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		var err error
		_, st, err = l.Infer(ctx, x)
		if err != nil {
			b.Fatal(err)
		}
		online += st.Online
		dealer += st.Dealer
		offline += st.Offline
	}
	cpu := cpuTime() - cpu0
	it := float64(b.N)
	batch := float64(x.Shape[0])
	// CPU time of the whole process (all parties, dealer, sharing) per
	// inference: a figure that does not depend on the machine's load
	b.ReportMetric(float64(cpu.Microseconds())/1000/it, "cpu-ms")
	b.ReportMetric(float64(st.Rounds), "rounds")
	b.ReportMetric(float64(st.BytesSent), "B/party")
	b.ReportMetric(float64(st.DealerBytes), "dealerB")
	b.ReportMetric(float64(online.Microseconds())/1000/it, "online-ms")
	b.ReportMetric(float64(online.Microseconds())/1000/it/batch, "online-ms/sample")
	b.ReportMetric(float64(dealer.Microseconds())/1000/it, "dealer-ms")
	b.ReportMetric(float64(offline.Microseconds())/1000/it, "expand-ms")
	if masked {
		b.ReportMetric(float64(l.Setup.BytesSent), "setupB/party")
	}
	if cmps, keyWords := gateCount(b, p, x.Shape[0], n); cmps > 0 {
		b.ReportMetric(float64(cmps), "cmps")
		b.ReportMetric(float64(8*keyWords)/float64(cmps), "keyB/cmp")
		b.ReportMetric(float64(dealer.Nanoseconds())/it/float64(cmps), "dealer-ns/cmp")
	}
}

// gateCount is the number of sign gates (DCF comparisons) of a session of
// n parties and the words of their keys each party receives (root seeds
// and correction words); 0 without gates.
func gateCount(b *testing.B, p *plan.Plan, batch, n int) (cmps, keyWords int) {
	sched, err := dealer.ScheduleFor(p, batch, n)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range sched {
		if r.Kind == dealer.KindReluGate || r.Kind == dealer.KindTruncReluGate {
			bits, w := dealer.GateShape(r.Kind)
			cmps += r.N
			keyWords += r.N * (2 + fss.KeyWords(bits-1, w))
		}
	}
	return cmps, keyWords
}

// protocols are the comparison protocols a benchmark runs for n parties:
// with two, sign gates ("fss") and, in gridfault builds (withCarryForTwo),
// the carry circuit too; with more, the carry circuit.
func protocols(n int) []string {
	if n != 2 {
		return []string{"carry"}
	}
	if carrySwitchable {
		return []string{"fss", "carry"}
	}
	return []string{"fss"}
}

// benchProtocol runs f with the comparison protocol named (protocols).
func benchProtocol(b *testing.B, n int, proto string, f func(b *testing.B)) {
	if n == 2 && proto == "carry" {
		defer withCarryForTwo()()
	}
	f(b)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMLP784 is SecureML's network A (784-128-128-10, ReLU), weights
// random but fixed by a seed, over the in-memory transport, with fresh
// matrix triples per query ("triples") and with weight masks opened once
// at deployment ("masks", the setup's bytes reported as setupB/party).
func BenchmarkMLP784(b *testing.B) {
	r := rand.New(rand.NewPCG(784, 1))
	p, w := mlp(r, 784, 128, 128, 10)
	for _, masked := range []bool{false, true} {
		mode := map[bool]string{false: "triples", true: "masks"}[masked]
		for _, n := range []int{2, 3} {
			for _, proto := range protocols(n) {
				for _, batch := range []int{1, 100} {
					x := uniform(rand.New(rand.NewPCG(1, uint64(batch))), 1, batch, 784)
					b.Run(fmt.Sprintf("%s/N=%d-%s/batch=%d", mode, n, proto, batch), func(b *testing.B) {
						benchProtocol(b, n, proto, func(b *testing.B) { benchSession(b, p, w, x, n, masked) })
					})
				}
			}
		}
	}
}

// BenchmarkMLP784WAN runs the masked MLP784 with every message delayed by
// 5 ms (a WAN-like one-way latency): the online time is then about
// rounds x 5 ms, which is why the protocol minimises rounds (and why two
// holders' sign gates, 6 rounds, beat the carry circuit's 14 there).
func BenchmarkMLP784WAN(b *testing.B) {
	r := rand.New(rand.NewPCG(784, 1))
	p, w := mlp(r, 784, 128, 128, 10)
	for _, n := range []int{2, 3} {
		for _, proto := range protocols(n) {
			for _, batch := range []int{1, 100} {
				x := uniform(rand.New(rand.NewPCG(1, uint64(batch))), 1, batch, 784)
				b.Run(fmt.Sprintf("N=%d-%s/batch=%d", n, proto, batch), func(b *testing.B) {
					nw := transport.NewNetwork(n)
					for i := range n {
						nw.Delay(i, 5*time.Millisecond)
					}
					benchProtocol(b, n, proto, func(b *testing.B) { benchSession(b, p, w, x, n, true, WithNetwork(nw)) })
				})
			}
		}
	}
}

// BenchmarkMLP784Plain is the plaintext twin (plan.EvalPlain) on the same
// network, the reference for the per-sample cost.
func BenchmarkMLP784Plain(b *testing.B) {
	r := rand.New(rand.NewPCG(784, 1))
	p, w := mlp(r, 784, 128, 128, 10)
	for _, batch := range []int{1, 100} {
		x := uniform(rand.New(rand.NewPCG(1, uint64(batch))), 1, batch, 784)
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := plan.EvalPlain(p, w, x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N)/float64(batch), "ms/sample")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms")
		})
	}
}

// BenchmarkSmallCNN: conv 3x3 (4 channels) + ReLU + 2x2 max pool + fc on
// 1x8x8 images.
func BenchmarkSmallCNN(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 8))
	p, w := smallCNN(r)
	for _, n := range []int{2, 3} {
		for _, proto := range protocols(n) {
			for _, batch := range []int{1, 100} {
				x := uniform(rand.New(rand.NewPCG(2, uint64(batch))), 1, batch, 1, 8, 8)
				b.Run(fmt.Sprintf("N=%d-%s/batch=%d", n, proto, batch), func(b *testing.B) {
					benchProtocol(b, n, proto, func(b *testing.B) { benchSession(b, p, w, x, n, true) })
				})
			}
		}
	}
}
