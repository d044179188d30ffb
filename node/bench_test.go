package node_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// mlp784 is the 784-128-128-10 ReLU MLP with small random weights.
func mlp784() (*plan.Plan, plan.Weights) {
	dims := []int{784, 128, 128, 10}
	p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{-1, 784}}}
	w := plan.Weights{}
	rng := rand.New(rand.NewPCG(1, 2))
	in := "x"
	for l := range 3 {
		wn, bn := "W"+string(rune('1'+l)), "B"+string(rune('1'+l))
		p.Weights = append(p.Weights, plan.Value{Name: wn, Shape: []int{dims[l], dims[l+1]}}, plan.Value{Name: bn, Shape: []int{dims[l+1]}})
		wt := tensor.New[float64](dims[l], dims[l+1])
		for i := range wt.Data {
			wt.Data[i] = (rng.Float64()*2 - 1) / math.Sqrt(float64(dims[l]))
		}
		bt := tensor.New[float64](dims[l+1])
		for i := range bt.Data {
			bt.Data[i] = rng.Float64()*0.2 - 0.1
		}
		w[wn], w[bn] = wt, bt
		out := "h" + string(rune('1'+l))
		p.Nodes = append(p.Nodes, plan.Node{Name: "fc" + string(rune('1'+l)), Op: plan.MatMul, Inputs: []string{in, wn, bn}, Output: out})
		in = out
		if l < 2 {
			p.Nodes = append(p.Nodes, plan.Node{Name: "relu" + string(rune('1'+l)), Op: plan.Relu, Inputs: []string{in}, Output: in + "r"})
			in += "r"
		}
	}
	p.Output = in
	return p, w
}

// benchCluster starts a nodetest cluster of the given number of holders,
// a dealer and a client, with the node tests' session timeout.
func benchCluster(b *testing.B, holders int) *nodetest.Cluster {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := nodetest.MakeCluster(ctx, b.TempDir(), nodetest.Config{Holders: holders, Clients: 1,
		Edit: func(_ string, _ int, cfg *node.Config) { cfg.SessionTimeout = 15 * time.Second }})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func vec(v ...float64) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: []int{len(v)}, Data: v}
}

// benchQueries publishes the model over holders and runs b.N queries of x,
// reporting the online time, rounds and the busiest holder's bytes.
func benchQueries(b *testing.B, id string, p *plan.Plan, w plan.Weights, holders int, x *tensor.Dense[float64], o node.InferOptions) {
	c := benchCluster(b, holders)
	defer c.Close()
	client := c.Clients[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := client.Publish(ctx, id, p, w, node.PublishOptions{Holders: holders}); err != nil {
		b.Fatal(err)
	}
	want, err := plan.EvalPlain(p, w, x)
	if err != nil {
		b.Fatal(err)
	}
	var online, total time.Duration
	var last *node.Result
	b.ResetTimer()
	for b.Loop() {
		res, err := client.Infer(ctx, id, x, o)
		if err != nil {
			b.Fatal(err)
		}
		online += res.Online
		total += res.Total
		last = res
	}
	b.StopTimer()
	for i := range want.Data {
		if math.Abs(last.Output[i]-want.Data[i]) > 0.05 {
			b.Fatalf("output %d = %v, plaintext %v", i, last.Output[i], want.Data[i])
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(online.Microseconds())/1000/n, "online-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/n, "total-ms")
	b.ReportMetric(float64(last.Rounds), "rounds")
	b.ReportMetric(float64(last.BytesSent), "bytes-sent/holder")
	b.ReportMetric(float64(last.BytesRecv), "bytes-recv/holder")
}

// BenchmarkSeedQuery is the seed model over 4 holders and a dealer, between
// real hosts on loopback TCP.
func BenchmarkSeedQuery(b *testing.B) {
	p, w := plan.Seed()
	benchQueries(b, "convnet", p, w, 4, vec(5, 3), node.InferOptions{})
}

// BenchmarkMLP784Holders3 is the 784-128-128-10 MLP over 3 holders and a
// dealer, batch 1.
func BenchmarkMLP784Holders3(b *testing.B) {
	p, w := mlp784()
	x := tensor.New[float64](1, 784)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range x.Data {
		x.Data[i] = rng.Float64()
	}
	benchQueries(b, "mlp", p, w, 3, x, node.InferOptions{})
}

// loadAnswer is one query's outcome in BenchmarkLoad200.
type loadAnswer struct {
	d   time.Duration
	err error
}

// BenchmarkLoad200 runs 200 concurrent seed queries against 4 holders
// (MaxSessions 64 each) per iteration, without and with client retries of
// busy refusals: every answer must be exactly right
// or a busy/timeout error. It reports throughput, p50/p99 latency of the
// answered queries and the share refused as busy.
func BenchmarkLoad200(b *testing.B) {
	for _, retries := range []int{0, 3} {
		b.Run(fmt.Sprintf("busy-retries=%d", retries), func(b *testing.B) { benchLoad(b, retries) })
	}
}

func benchLoad(b *testing.B, retries int) {
	c := benchCluster(b, 4)
	defer c.Close()
	client := c.Clients[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, w := plan.Seed()
	if _, err := client.Publish(ctx, "convnet", p, w, node.PublishOptions{Holders: 4}); err != nil {
		b.Fatal(err)
	}
	const clients = 200
	var lat []time.Duration
	var busy, timeouts, total int
	start := time.Now()
	b.ResetTimer()
	// for range b.N, not b.Loop: b.Loop with goroutine closures in its body
	// crashes the Go 1.26.8 compiler (internal compiler error).
	for range b.N {
		answers := make(chan loadAnswer, clients)
		for i := range clients {
			go func() {
				t0 := time.Now()
				x := float64(i % 50)
				res, err := client.Infer(ctx, "convnet", vec(x, 1), node.InferOptions{BusyRetries: retries})
				if err == nil && math.Abs(res.Output[0]-plan.SeedAnswer(x, 1)) > 0.01 {
					err = fmt.Errorf("wrong answer %v for x=%v", res.Output, x)
				}
				answers <- loadAnswer{time.Since(t0), err}
			}()
		}
		for range clients {
			a := <-answers
			total++
			switch {
			case a.err == nil:
				lat = append(lat, a.d)
			case errors.Is(a.err, node.ErrBusy):
				busy++
			case errors.Is(a.err, context.DeadlineExceeded):
				timeouts++
			default:
				b.Fatalf("query failed: %v", a.err)
			}
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "answers/s")
	b.ReportMetric(float64(busy)/float64(total), "busy-frac")
	b.ReportMetric(float64(timeouts)/float64(total), "timeout-frac")
}
