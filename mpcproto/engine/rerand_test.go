package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// fixedRand is a deterministic source of the client's and the dealer's
// seeds (test scaffolding: two Locals made with the same seed share the
// same weight shares, masks, input shares and bundles).
func fixedRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// addPlan has no interactive op: y = x + b.
func addPlan() (*plan.Plan, plan.Weights) {
	p := onePlan([]int{-1, 3}, "y", []plan.Value{{Name: "b", Shape: []int{3}}},
		plan.Node{Name: "add", Op: plan.Add, Inputs: []string{"x", "b"}, Output: "y"})
	return p, plan.Weights{"b": &tensor.Dense[float64]{Shape: []int{3}, Data: []float64{1, -2, 0.5}}}
}

// TestOutputRerandomized: with everything the client and the dealer know
// held fixed (same seeds), two sessions give the same output but fresh
// output shares, for plans with and without interactive ops; a plan
// without any takes one round, for the seeds.
func TestOutputRerandomized(t *testing.T) {
	ctx := context.Background()
	mp, mw, mx := smallMLP()
	ap, aw := addPlan()
	cases := []struct {
		name   string
		p      *plan.Plan
		w      plan.Weights
		x      *tensor.Dense[float64]
		rounds int
		fss    int // rounds with two parties (sign gates)
	}{
		{"mlp", mp, mw, mx, 8, 4},
		{"no interactive op", ap, aw, &tensor.Dense[float64]{Shape: []int{1, 3}, Data: []float64{3, 4, 5}}, 1, 1},
	}
	for _, tc := range cases {
		for _, n := range []int{2, 3, 5} {
			var runs [2]localRun
			for k := range runs {
				l, err := NewLocal(ctx, tc.p, tc.w, n, WithRand(fixedRand(uint64(n))))
				if err != nil {
					t.Fatal(err)
				}
				if runs[k], err = l.session(ctx, tc.x); err != nil {
					t.Fatalf("%s N=%d: %v", tc.name, n, err)
				}
			}
			a, b := runs[0], runs[1]
			if want := roundsFor(n, tc.rounds, tc.fss); a.stats.Rounds != want {
				t.Errorf("%s N=%d: %d rounds, want %d", tc.name, n, a.stats.Rounds, want)
			}
			ya, _ := share.ReconstructN(a.outs, n)
			yb, _ := share.ReconstructN(b.outs, n)
			if !slices.Equal(ya.Data, yb.Data) {
				t.Fatalf("%s N=%d: outputs differ: %v and %v", tc.name, n, ya.Data, yb.Data)
			}
			want, _ := plan.EvalPlain(tc.p, tc.w, tc.x)
			for i, v := range fixed.Default().Decode(ya).Data {
				if math.Abs(v-want.Data[i]) > 1e-3 {
					t.Fatalf("%s N=%d: element %d = %v, want %v", tc.name, n, i, v, want.Data[i])
				}
			}
			for i := range n {
				for e := range a.outs[i].Data {
					if a.outs[i].Data[e] == b.outs[i].Data[e] {
						t.Fatalf("%s N=%d: holder %d's share of element %d repeats with the same client and dealer seeds",
							tc.name, n, i, e)
					}
				}
			}
		}
	}
}

// TestSeedTraffic: party i sends a 32-byte seed to every later party in
// its first round, and the engine's figures count them.
func TestSeedTraffic(t *testing.T) {
	p, w, x := smallMLP()
	for _, n := range []int{2, 3, 4} {
		_, st, err := RunLocal(context.Background(), p, w, x, n)
		if err != nil {
			t.Fatal(err)
		}
		last := st.Parties[n-1]
		for i, ps := range st.Parties {
			if d := ps.BytesSent - last.BytesSent; d != int64(share.SeedSize*(n-1-i)) {
				t.Errorf("N=%d: party %d sends %d bytes more than the last party, want %d", n, i, d, share.SeedSize*(n-1-i))
			}
			if d := ps.BytesRecv - st.Parties[0].BytesRecv; d != int64(share.SeedSize*i) {
				t.Errorf("N=%d: party %d receives %d bytes more than party 0, want %d", n, i, d, share.SeedSize*i)
			}
			if ps.Messages != st.Parties[0].Messages || ps.Rounds != st.Parties[0].Rounds {
				t.Errorf("N=%d: party %d: %d messages in %d rounds, party 0 %d in %d", n, i,
					ps.Messages, ps.Rounds, st.Parties[0].Messages, st.Parties[0].Rounds)
			}
		}
	}
}

// TestBadSeedMessage: a first-round message whose seed is missing or cut
// is a *ProtocolError naming the sender, never a panic.
func TestBadSeedMessage(t *testing.T) {
	p, w, x := smallMLP()
	ap, aw := addPlan()
	ax := &tensor.Dense[float64]{Shape: []int{1, 3}, Data: []float64{3, 4, 5}}
	strip := func(m []byte) []byte { // drop the seed, header announcing it
		return m[:len(m)-share.SeedSize]
	}
	recount := func(m []byte) []byte { // drop the seed and fix the header
		m = m[:len(m)-share.SeedSize]
		putWordCount(m, (len(m)-headerSize)/8)
		return m
	}
	cut := func(m []byte) []byte { return m[:len(m)-3] }
	tests := []struct {
		name string
		p    *plan.Plan
		w    plan.Weights
		x    *tensor.Dense[float64]
		f    func([]byte) []byte
	}{
		{"seed missing", p, w, x, strip},
		{"seed missing, header fixed", p, w, x, recount},
		{"seed cut", p, w, x, cut},
		{"seed round missing", ap, aw, ax, recount},
		{"seed round cut", ap, aw, ax, cut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := transport.NewNetwork(3)
			nw.SetIntercept(func(src, dst int, m []byte) ([]byte, bool) {
				if src == 1 && dst == 2 && binary.LittleEndian.Uint32(m) == 1 {
					return tc.f(m), true
				}
				return m, true
			})
			_, _, err := RunLocal(context.Background(), tc.p, tc.w, tc.x, 3, WithNetwork(nw))
			wantErr(t, tc.name, err, "party 2", "round 1", "party 1", "bad message")
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Peer != 1 || pe.Self != 2 {
				t.Fatalf("error %v (%T) is not a *ProtocolError of party 2 naming party 1", err, err)
			}
		})
	}
}
