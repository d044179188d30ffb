package engine

import (
	"context"
	"math"
	"testing"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// seedPlan is the seed's example: a 1x2 weight [2, 4] (as W [2, 1]) and a
// bias [1000], one MatMul node.
func seedPlan() (*plan.Plan, plan.Weights) {
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{2}},
		Output:  "y",
		Weights: []plan.Value{{Name: "W", Shape: []int{2, 1}}, {Name: "b", Shape: []int{1}}},
		Nodes:   []plan.Node{{Name: "fc", Op: plan.MatMul, Inputs: []string{"x", "W", "b"}, Output: "y"}},
	}
	w := plan.Weights{
		"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{2, 4}},
		"b": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1000}},
	}
	return p, w
}

func TestSeedExample(t *testing.T) {
	p, w := seedPlan()
	x := &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}}
	for _, n := range []int{2, 3, 4, 7} {
		y, st, err := RunLocal(context.Background(), p, w, x, n)
		if err != nil {
			t.Fatalf("N=%d: %v", n, err)
		}
		if len(y.Data) != 1 || math.Abs(y.Data[0]-1022) > 2.0/65536 {
			t.Fatalf("N=%d: got %v, want 1022", n, y.Data)
		}
		if st.Rounds != 2 {
			t.Errorf("N=%d: %d rounds, want 2 (open E,F; truncate)", n, st.Rounds)
		}
	}
}

// TestStatsMatchTransport: the engine's own figures agree with what the
// in-memory network counted for every party.
func TestStatsMatchTransport(t *testing.T) {
	p, w, x := smallMLP()
	nw := transport.NewNetwork(3)
	_, st, err := RunLocal(context.Background(), p, w, x, 3, WithNetwork(nw))
	if err != nil {
		t.Fatal(err)
	}
	for i, ps := range st.Parties {
		c := nw.Counters(i)
		if c.Rounds != int64(ps.Rounds) || c.MsgsSent != ps.Messages || c.BytesSent != ps.BytesSent || c.BytesRecv != ps.BytesRecv {
			t.Errorf("party %d: engine %+v, transport %+v", i, ps, c)
		}
	}
}
