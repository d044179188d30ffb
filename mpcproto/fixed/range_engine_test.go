package fixed_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// seedPlan is the seed model: y = 2·x0 + 4·x1 + 1000.
func seedPlan() (*plan.Plan, plan.Weights) {
	p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{2}}, Output: "y",
		Weights: []plan.Value{{Name: "W", Shape: []int{2, 1}}, {Name: "b", Shape: []int{1}}},
		Nodes:   []plan.Node{{Name: "fc", Op: plan.MatMul, Inputs: []string{"x", "W", "b"}, Output: "y"}}}
	w := plan.Weights{"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{2, 4}},
		"b": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1000}}}
	return p, w
}

// TestSecureOverflow runs the seed model in the secure engine across the
// safe range: within SafeInput the result is right; past it, while the
// true result is below 3·SafeRange, the result is either right but beyond
// SafeRange or off by 4·SafeRange (2^32), at random, and CheckOutput
// reports both; past 3·SafeRange a wrapped result can land in the range,
// which only the estimate (not CheckOutput) catches.
func TestSecureOverflow(t *testing.T) {
	p, w := seedPlan()
	enc := fixed.Default()
	est, err := plan.EstimateRange(p, w, enc, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, wrap := est.SafeInput, 4*enc.SafeRange()
	tests := []struct {
		name   string
		x      []float64
		runs   int
		shifts []float64 // the possible errors of the result
		caught bool      // CheckOutput reports them
	}{
		// 6·s + 1000 is 2^30 exactly once encoded: the edge is safe
		{"safe input", []float64{s, s}, 3, []float64{0}, false},
		{"safe negative", []float64{-s, -s}, 3, []float64{0}, false},
		{"1e9 (the seed's example)", []float64{1e9, 3}, 8, []float64{0, -wrap}, true},
		{"-1e9", []float64{-1e9, 0}, 8, []float64{0, wrap}, true},
		{"2e9: wraps into the range", []float64{2e9, 0}, 2, []float64{-wrap}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &tensor.Dense[float64]{Shape: []int{2}, Data: tc.x}
			want, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatal(err)
			}
			for range tc.runs {
				y, _, err := engine.RunLocal(context.Background(), p, w, x, 2)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(tc.shifts, func(d float64) bool { return math.Abs(y.Data[0]-want.Data[0]-d) < 1e-3 }) {
					t.Fatalf("result %.10g, want %.10g shifted by one of %v", y.Data[0], want.Data[0], tc.shifts)
				}
				if err := enc.CheckOutput(y); errors.Is(err, fixed.ErrOverflow) != tc.caught {
					t.Fatalf("result %.10g: CheckOutput = %v, want caught %v", y.Data[0], err, tc.caught)
				}
			}
			e, err := plan.EstimateRange(p, w, enc, math.Max(math.Abs(tc.x[0]), math.Abs(tc.x[1])))
			if err != nil {
				t.Fatal(err)
			}
			if unsafe := tc.shifts[len(tc.shifts)-1] != 0; (e.Err() != nil) != unsafe {
				t.Errorf("estimate Err() = %v, want unsafe %v", e.Err(), unsafe)
			}
		})
	}
}
