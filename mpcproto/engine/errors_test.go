package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

func smallMLP() (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
	r := rand.New(rand.NewPCG(31, 32))
	p, w := mlp(r, 4, 3, 2)
	return p, w, randVals(r, 2, 4)
}

// wantErr checks that err is non-nil and mentions every fragment.
func wantErr(t *testing.T, label string, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", label)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("%s: error %q does not mention %q", label, err, f)
		}
	}
}

func TestBadInputs(t *testing.T) {
	ctx := context.Background()
	p, w, x := smallMLP()
	_, _, err := RunLocal(ctx, p, w, randVals(rand.New(rand.NewPCG(1, 1)), 2, 5), 3)
	wantErr(t, "input shape", err, "input", "[2 5]", "[2 4]")

	bad := plan.Weights{"w0": randVals(rand.New(rand.NewPCG(1, 1)), 3, 3), "b0": w["b0"], "w1": w["w1"], "b1": w["b1"]}
	_, _, err = RunLocal(ctx, p, bad, x, 3)
	wantErr(t, "weight shape", err, "w0", "[3 3]")

	unknown := onePlan([]int{-1, 4}, "y", nil, plan.Node{Name: "sm", Op: "Softmax", Inputs: []string{"x"}, Output: "y"})
	_, _, err = RunLocal(ctx, unknown, plan.Weights{}, x, 2)
	wantErr(t, "unknown op", err, "Softmax", "sm")

	mismatch := onePlan([]int{-1, 4}, "y", []plan.Value{{Name: "w", Shape: []int{3, 2}}},
		plan.Node{Name: "mm", Op: plan.MatMul, Inputs: []string{"x", "w"}, Output: "y"})
	_, _, err = RunLocal(ctx, mismatch, plan.Weights{"w": tensor.New[float64](3, 2)}, x, 2)
	wantErr(t, "inner dims", err, "mm", "MatMul")

	_, _, err = RunLocal(ctx, p, w, x, 1)
	wantErr(t, "one party", err, "1 parties")

	big := x.Clone()
	big.Data[0] = 1e300
	_, _, err = RunLocal(ctx, p, w, big, 2)
	wantErr(t, "overflow", err, "input", "element 0", "representable")
}

func TestRunPartyChecks(t *testing.T) {
	ctx := context.Background()
	p, _, _ := smallMLP()
	bundles, err := dealer.Deal(p, 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	nw := transport.NewNetwork(3)
	cfg := Config{Plan: p, Batch: 2, Enc: fixed.Default()}
	in := tensor.New[uint64](2, 4)
	ws := map[string]*tensor.Dense[uint64]{"w0": tensor.New[uint64](4, 3), "b0": tensor.New[uint64](3),
		"w1": tensor.New[uint64](3, 2), "b1": tensor.New[uint64](2)}
	_, _, err = RunParty(ctx, cfg, nw.Transport(0), ws, in, bundles[1])
	wantErr(t, "wrong party's bundle", err, "bundle is for party 1", "party 0")
	_, _, err = RunParty(ctx, cfg, transport.NewNetwork(4).Transport(0), ws, in, bundles[0])
	wantErr(t, "wrong number of parties", err, "party 0 of 3", "party 0 of 4")
	_, _, err = RunParty(ctx, Config{Plan: p, Batch: 3, Enc: fixed.Default()}, nw.Transport(0), ws, tensor.New[uint64](3, 4), bundles[0])
	wantErr(t, "batch", err, "batch 2", "batch 3")
	_, _, err = RunParty(ctx, Config{Plan: p, Batch: 2, Enc: fixed.Encoding{Frac: 12}}, nw.Transport(0), ws, in, bundles[0])
	wantErr(t, "precision", err, "16 fractional bits")
	delete(ws, "b1")
	_, _, err = RunParty(ctx, cfg, nw.Transport(0), ws, in, bundles[0])
	wantErr(t, "missing weight", err, "b1", "missing")
	ws["b1"], ws["extra"] = tensor.New[uint64](2), tensor.New[uint64](1)
	_, _, err = RunParty(ctx, cfg, nw.Transport(0), ws, in, bundles[0])
	wantErr(t, "extra weight", err, "extra", "not declared")
	other, _ := mlp(rand.New(rand.NewPCG(1, 2)), 4, 3, 3)
	other.Nodes[0].Name = "other"
	_, _, err = RunParty(ctx, Config{Plan: other, Batch: 2, Enc: fixed.Default()}, nw.Transport(0), ws, in, bundles[0])
	wantErr(t, "bundle for another plan", err, "dealt for plan")
}

// faultAt rewrites the messages that party from sends in the given round.
func faultAt(from, round int, f func([]byte) []byte) transport.Intercept {
	return func(src, dst int, m []byte) ([]byte, bool) {
		if src == from && len(m) >= 8 && int(binary.LittleEndian.Uint32(m)) == round {
			return f(m), true
		}
		return m, true
	}
}

func TestPeerFaults(t *testing.T) {
	p, w, x := smallMLP()
	// rounds: fc0 1, fc0's truncation fused with relu0 2-6, fc1 7-8
	tests := []struct {
		name  string
		setup func(nw *transport.Network)
		want  []string
	}{
		{"short message", func(nw *transport.Network) {
			nw.SetIntercept(faultAt(2, 3, func(m []byte) []byte { return m[:len(m)-5] }))
		}, []string{"round 3", "party 2", "relu0 (Relu)", "expected"}},
		{"oversized message", func(nw *transport.Network) {
			nw.SetIntercept(faultAt(1, 8, func(m []byte) []byte { return append(m, make([]byte, 64)...) }))
		}, []string{"round 8", "party 1", "fc1 (MatMul)", "expected"}},
		{"header only", func(nw *transport.Network) {
			nw.SetIntercept(faultAt(2, 1, func(m []byte) []byte { return m[:3] }))
		}, []string{"round 1", "party 2", "fc0", "header"}},
		{"replayed round", func(nw *transport.Network) {
			nw.SetIntercept(faultAt(1, 5, func(m []byte) []byte { binary.LittleEndian.PutUint32(m, 4); return m }))
		}, []string{"round 5", "party 1", "message of round 4"}},
		{"disconnect mid-round", func(nw *transport.Network) {
			var sent atomic.Int32
			nw.SetIntercept(func(src, dst int, m []byte) ([]byte, bool) {
				if src == 2 && int(binary.LittleEndian.Uint32(m)) == 7 && sent.Add(1) == 1 {
					nw.Disconnect(2) // gone after one of its round-7 messages
					return m, false
				}
				return m, true
			})
		}, []string{"round 7", "party 2", transport.ErrDisconnected.Error()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := transport.NewNetwork(3)
			tc.setup(nw)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, _, err := RunLocal(ctx, p, w, x, 3, WithNetwork(nw))
			wantErr(t, tc.name, err, tc.want...)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not a *ProtocolError", err)
			}
		})
	}
}

func TestDroppedPartyTimesOut(t *testing.T) {
	p, w, x := smallMLP()
	nw := transport.NewNetwork(2)
	nw.Drop(1, true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := RunLocal(ctx, p, w, x, 2, WithNetwork(nw))
	// party 0 waits in round 1 for party 1, party 1 in round 2 for party 0
	wantErr(t, "drop", err, "round", "deadline exceeded")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap DeadlineExceeded", err)
	}
}

func TestCancelledContext(t *testing.T) {
	p, w, x := smallMLP()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := RunLocal(ctx, p, w, x, 2)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// badProvider serves material of the wrong size.
type badProvider struct{}

func (badProvider) Next(want dealer.Request) (*dealer.Material, error) {
	return &dealer.Material{Req: want, Parts: [][]uint64{{1}, {2}, {3}}}, nil
}

func TestBadProvider(t *testing.T) {
	p, _, _ := smallMLP()
	nw := transport.NewNetwork(2)
	ws := map[string]*tensor.Dense[uint64]{"w0": tensor.New[uint64](4, 3), "b0": tensor.New[uint64](3),
		"w1": tensor.New[uint64](3, 2), "b1": tensor.New[uint64](2)}
	_, _, err := RunPartyWith(context.Background(), Config{Plan: p, Batch: 2, Enc: fixed.Default()}, nw.Transport(0),
		ws, tensor.New[uint64](2, 4), badProvider{})
	wantErr(t, "bad provider", err, "fc0 (MatMul)", "part 0 holds 1 words, want 8")
}
