package plan

import (
	"math"
	"testing"
)

// TestApproximationBounds measures Sigmoid's and SiLU's approximations
// against float64 on a dense grid over [-40, 40] and at a few large
// values: the error must leave at least 1e-4 of the stated bound to the
// engine's fixed point.
func TestApproximationBounds(t *testing.T) {
	for _, tc := range []struct {
		op    Op
		f     func(float64) float64
		bound float64
		want  float64 // the measured error, for the record
	}{
		{Sigmoid, sigmoid, SigmoidBound, 2.93e-4},
		{SiLU, silu, SiLUBound, 3.18e-4},
	} {
		pw, _ := PiecewiseOf(&Node{Op: tc.op})
		worst, at := 0.0, 0.0
		check := func(x float64) {
			if e := math.Abs(pw.Eval(x, 0) - tc.f(x)); e > worst {
				worst, at = e, x
			}
		}
		for x := -40.0; x <= 40; x += 1.0 / 4096 {
			check(x)
		}
		for _, x := range []float64{-1e6, -1000, 1000, 1e6} {
			check(x)
		}
		t.Logf("%s: max |approximation - f| = %.3g at x = %.4g (%d pieces, stated bound %.0e)", tc.op, worst, at, len(pw.Pieces), tc.bound)
		if worst > tc.bound-1e-4 || worst > tc.want*1.05 {
			t.Errorf("%s: error %.3g exceeds the bound %.3g less 1e-4 of fixed point, or the documented %.2g", tc.op, worst, tc.bound, tc.want)
		}
		if Approximated[tc.op] != tc.bound {
			t.Errorf("%s: Approximated says %v", tc.op, Approximated[tc.op])
		}
	}
}

// TestPiecewiseExact: the exact piecewise ops' functions (what the engine
// evaluates) are the twin's, on a grid.
func TestPiecewiseExact(t *testing.T) {
	lo, hi := -1.5, 6.0
	nodes := []Node{
		{Op: Clip, Attrs: Attrs{Min: &lo, Max: &hi}},
		{Op: Clip, Attrs: Attrs{Min: &lo}},
		{Op: Clip, Attrs: Attrs{Max: &hi}},
		{Op: LeakyRelu, Attrs: Attrs{Alpha: 0.01}},
		{Op: PRelu, Attrs: Attrs{Const: &Const{Shape: []int{1}, Data: []float64{-0.25}}}},
		{Op: HardSigmoid, Attrs: Attrs{Alpha: 0.2, Beta: 0.5}},
		{Op: HardSwish},
	}
	for _, n := range nodes {
		pw, ok := PiecewiseOf(&n)
		if !ok || pw.check() != nil {
			t.Fatalf("%s: no piecewise function (%v)", n.Op, pw.check())
		}
		var xs []float64
		for x := -10.0; x <= 10; x += 1.0 / 64 {
			xs = append(xs, x)
		}
		want := make([]float64, len(xs))
		evalPiecewiseExact(&n, xs, want, func(int) float64 { return -0.25 })
		for i, x := range xs {
			if got := pw.Eval(x, -0.25); math.Abs(got-want[i]) > 1e-12 {
				t.Fatalf("%s at %v: pieces give %v, the twin %v", n.Op, x, got, want[i])
			}
		}
		fus := n.Op == Clip
		if pw.Fusable() != fus {
			t.Errorf("%s: fusable %v, want %v", n.Op, pw.Fusable(), fus)
		}
	}
}
