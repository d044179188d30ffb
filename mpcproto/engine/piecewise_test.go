package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

func fptr(v float64) *float64 { return &v }

// wideVals draws values in [-24, 24] (multiples of 1/64), with some on
// the thresholds of the piecewise ops.
func wideVals(r *rand.Rand, shape ...int) *tensor.Dense[float64] {
	t := tensor.New[float64](shape...)
	edges := []float64{-16, -8, -3, -0.75, 0, 0.5, 1, 3, 6, 8, 16}
	for i := range t.Data {
		if r.IntN(4) == 0 {
			t.Data[i] = edges[r.IntN(len(edges))]
		} else {
			t.Data[i] = float64(r.IntN(3073)-1536) / 64
		}
	}
	return t
}

// pieceCase is one op of the piecewise family over the input alone.
func pieceCase(n plan.Node, tol float64) opCase {
	return opCase{string(n.Op), tol, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
		n.Inputs, n.Output = []string{"x"}, "y"
		if n.Name == "" {
			n.Name = "pw"
		}
		p := onePlan([]int{-1, 3, 5}, "y", nil, n)
		return p, plan.Weights{}, wideVals(r, 1+r.IntN(3), 3, 5)
	}}
}

func piecewiseCases() []opCase {
	// the encoding of a non-dyadic coefficient errs by 2^-17 times |x| <= 24
	eps := 1.0 / (1 << 12)
	return []opCase{
		pieceCase(plan.Node{Op: plan.Clip, Attrs: plan.Attrs{Min: fptr(0), Max: fptr(6)}}, 0),
		pieceCase(plan.Node{Name: "clipmin", Op: plan.Clip, Attrs: plan.Attrs{Min: fptr(-1.3)}}, 1.0/(1<<16)),
		pieceCase(plan.Node{Name: "clipmax", Op: plan.Clip, Attrs: plan.Attrs{Max: fptr(2.7)}}, 1.0/(1<<16)),
		pieceCase(plan.Node{Op: plan.LeakyRelu, Attrs: plan.Attrs{Alpha: 0.01}}, eps),
		pieceCase(plan.Node{Op: plan.PRelu, Attrs: plan.Attrs{Const: &plan.Const{Shape: []int{3, 1}, Data: []float64{0.25, -0.1, 2}}}}, eps),
		pieceCase(plan.Node{Op: plan.HardSigmoid, Attrs: plan.Attrs{Alpha: 0.2, Beta: 0.5}}, eps),
		pieceCase(plan.Node{Op: plan.HardSwish}, eps),
		pieceCase(plan.Node{Op: plan.Sigmoid}, plan.SigmoidBound),
		pieceCase(plan.Node{Op: plan.SiLU}, plan.SiLUBound),
		{"SqueezeExcite", 4 * plan.SigmoidBound, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			// x·sigmoid(GAP(x)) over non-square maps (a Mul of two
			// activations broadcast [N,C,H,W]·[N,C,1,1]), plus a residual
			// Add of two activations
			p := onePlan([]int{-1, 3, 2, 5}, "y", nil,
				plan.Node{Name: "gap", Op: plan.GlobalAveragePool, Inputs: []string{"x"}, Output: "g"},
				plan.Node{Name: "gate", Op: plan.Sigmoid, Inputs: []string{"g"}, Output: "s"},
				plan.Node{Name: "scale", Op: plan.Mul, Inputs: []string{"x", "s"}, Output: "m"},
				plan.Node{Name: "res", Op: plan.Add, Inputs: []string{"m", "x"}, Output: "y"})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 3, 2, 5)
		}},
		{"FusedClip", 0.01, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			// ReLU6 of a convolution, with the convolution also read later
			p := onePlan([]int{-1, 2, 4, 4}, "s", []plan.Value{{Name: "k", Shape: []int{3, 2, 3, 3}}, {Name: "b", Shape: []int{3}}},
				plan.Node{Name: "conv", Op: plan.Conv, Inputs: []string{"x", "k", "b"}, Output: "c", Attrs: plan.Attrs{Pads: []int{1, 1, 1, 1}}},
				plan.Node{Name: "relu6", Op: plan.Clip, Inputs: []string{"c"}, Output: "r", Attrs: plan.Attrs{Min: fptr(0), Max: fptr(6)}},
				plan.Node{Name: "sum", Op: plan.Add, Inputs: []string{"r", "c"}, Output: "s"})
			return p, plan.Weights{"k": randVals(r, 3, 2, 3, 3), "b": randVals(r, 3)}, randVals(r, 1+r.IntN(2), 2, 4, 4)
		}},
	}
}

// TestPiecewiseAgainstTwin: every piecewise op agrees with the twin (the
// exact function) for N = 2, 3, 4: exactly for Clip, within the encoding
// of the coefficients for the others, within the stated bound for the
// approximated Sigmoid and SiLU; each takes 5 rounds (a Clip fused with
// its convolution's truncation 5 after the convolution's round).
func TestPiecewiseAgainstTwin(t *testing.T) {
	for ci, tc := range piecewiseCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 29))
			for it := range 3 {
				p, w, x := tc.gen(r)
				for _, n := range []int{2, 3, 4} {
					st := compare(t, fmt.Sprintf("instance %d N=%d", it, n), p, w, x, n, tc.tol)
					want := map[string]int{"FusedClip": 1 + 5, "SqueezeExcite": 1 + 5 + 2}[tc.name]
					if want == 0 {
						want = 5
					}
					if st.Rounds != want {
						t.Fatalf("N=%d: %d rounds, want %d", n, st.Rounds, want)
					}
				}
			}
		})
	}
}

// TestApproximationSecure evaluates Sigmoid and SiLU securely (N = 3) on a
// grid of 6401 values over [-25, 25] (and ±1000) and checks the error
// against float64 stays within the stated bound, fixed point included.
func TestApproximationSecure(t *testing.T) {
	var xs []float64
	for i := -3200; i <= 3200; i++ {
		xs = append(xs, float64(i)/128+1.0/1024)
	}
	xs = append(xs, -1000, 1000)
	x := &tensor.Dense[float64]{Shape: []int{1, len(xs)}, Data: xs}
	for _, op := range []plan.Op{plan.Sigmoid, plan.SiLU} {
		p := onePlan([]int{-1, len(xs)}, "y", nil, plan.Node{Name: "f", Op: op, Inputs: []string{"x"}, Output: "y"})
		want, err := plan.EvalPlain(p, plan.Weights{}, x)
		if err != nil {
			t.Fatal(err)
		}
		got, st, err := RunLocal(t.Context(), p, plan.Weights{}, x, 3)
		if err != nil {
			t.Fatal(err)
		}
		worst, at := 0.0, 0.0
		for i := range xs {
			if d := got.Data[i] - want.Data[i]; d > worst || -d > worst {
				worst, at = max(d, -d), xs[i]
			}
		}
		t.Logf("%s: max |secure - float64| = %.3g at x = %.4g (bound %.0e); %d rounds, %d bytes sent per party for %d values",
			op, worst, at, plan.Approximated[op], st.Rounds, st.BytesSent, len(xs))
		if worst > plan.Approximated[op] {
			t.Errorf("%s: error %.3g exceeds the bound %.3g", op, worst, plan.Approximated[op])
		}
	}
}
