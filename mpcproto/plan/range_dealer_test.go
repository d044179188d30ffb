package plan_test

import (
	"math"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// TestMulConstTruncationMatchesDealer: EstimateRange checks a MulConst as a
// product (truncated) exactly when the dealer schedules a truncation for it.
func TestMulConstTruncationMatchesDealer(t *testing.T) {
	consts := [][]float64{
		{2}, {2, -3}, {0.5}, {0}, {math.Copysign(0, -1)}, {1e-300}, {3.0000001},
		{1<<31 - 1}, {-(1<<31 - 1)}, {1 << 31}, {-(1 << 31)}, {1e15}, {1, 2.5},
	}
	for _, data := range consts {
		c := &plan.Const{Shape: []int{len(data)}, Data: data}
		p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{-1, len(data)}}, Output: "y",
			Nodes: []plan.Node{{Name: "m", Op: plan.MulConst, Inputs: []string{"x"}, Output: "y", Attrs: plan.Attrs{Const: c}}}}
		est, err := plan.EstimateRange(p, plan.Weights{}, fixed.Default(), 1)
		if err != nil {
			t.Fatal(err)
		}
		truncated := est.Nodes[0].What == "product sum"
		if want := !dealer.ConstIsInteger(c); truncated != want {
			t.Errorf("const %v: estimate truncates %v, the dealer %v", data, truncated, want)
		}
	}
}
