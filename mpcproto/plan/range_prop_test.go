package plan

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// nodeValues evaluates p on x and returns every node's output, in order.
func nodeValues(p *Plan, w Weights, x *tensor.Dense[float64]) ([]*tensor.Dense[float64], error) {
	outs := make([]*tensor.Dense[float64], len(p.Nodes))
	for i := range p.Nodes {
		q := *p
		q.Output = p.Nodes[i].Output
		y, err := EvalPlain(&q, w, x)
		if err != nil {
			return nil, err
		}
		outs[i] = y
	}
	return outs, nil
}

// randomInput draws an input of p's shape (batch 2) within ±r: uniform, or
// at the corners ±r (where linear layers reach their worst case).
func randomInput(rng *rand.Rand, p *Plan, r float64) *tensor.Dense[float64] {
	shape, _ := p.InputShape(1)
	if p.Input.Shape[0] == -1 {
		shape, _ = p.InputShape(2)
	}
	x := tensor.New[float64](shape...)
	corner := rng.IntN(2) == 0
	for i := range x.Data {
		if corner {
			x.Data[i] = r * float64(2*rng.IntN(2)-1)
		} else {
			x.Data[i] = r * (2*rng.Float64() - 1)
		}
	}
	return x
}

// checkSound fails when a node's actual value on x exceeds its bound.
func checkSound(t *testing.T, p *Plan, w Weights, est *RangeEstimate, x *tensor.Dense[float64]) {
	t.Helper()
	outs, err := nodeValues(p, w, x)
	if err != nil {
		t.Fatal(err)
	}
	for i, y := range outs {
		n := est.Nodes[i]
		for j, v := range y.Data {
			if math.Abs(v) > n.Bound*(1+1e-12) {
				t.Fatalf("R=%g: node %s element %d is %g, beyond its bound %g", est.InputMax, n.Name, j, v, n.Bound)
			}
			if n.Product > 0 && math.Abs(v) > n.Product*(1+1e-12) {
				t.Fatalf("R=%g: node %s element %d is %g, beyond its product bound %g", est.InputMax, n.Name, j, v, n.Product)
			}
		}
	}
}

// TestEstimateRangeSound: EvalPlain's values on random inputs within the
// input bound never exceed the estimate, for every node.
func TestEstimateRangeSound(t *testing.T) {
	plans := map[string]func() (*Plan, Weights){"seed": seedPlan, "mlp": mlpPlan, "cnn": cnnPlan, "mix": mixPlan}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, mk := range plans {
		t.Run(name, func(t *testing.T) {
			p, w := mk()
			for _, r := range []float64{0.01, 1, 16, 1e4} {
				est, err := EstimateRange(p, w, enc16, r)
				if err != nil {
					t.Fatal(err)
				}
				for range 50 {
					checkSound(t, p, w, est, randomInput(rng, p, r))
				}
			}
		})
	}
}

// FuzzEstimateRange: for any valid plan (decoded from the fuzzer's bytes)
// with random weights, EstimateRange does not panic and bounds EvalPlain's
// values on random inputs.
func FuzzEstimateRange(f *testing.F) {
	for _, mk := range []func() (*Plan, Weights){seedPlan, mlpPlan, cnnPlan, mixPlan} {
		p, _ := mk()
		b, _ := p.Marshal()
		f.Add(b, uint64(1), 3.0)
	}
	f.Fuzz(func(t *testing.T, b []byte, seed uint64, r float64) {
		p, err := Unmarshal(b)
		if err != nil || math.IsNaN(r) || r < 0 || r > 1e6 {
			return
		}
		shapes, err := p.Shapes(1)
		if err != nil {
			return
		}
		total := 0
		for _, s := range shapes {
			total += tensor.Size(s)
		}
		if total > 1<<14 {
			return
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		w := Weights{}
		for _, v := range p.Weights {
			wt := tensor.New[float64](v.Shape...)
			for i := range wt.Data {
				wt.Data[i] = 4 * (2*rng.Float64() - 1)
			}
			w[v.Name] = wt
		}
		est, err := EstimateRange(p, w, enc16, r)
		if err != nil {
			t.Fatalf("valid plan: %v", err)
		}
		x := randomInput(rng, p, r)
		if _, err := EvalPlain(p, w, x); err != nil {
			return // e.g. a non-finite value
		}
		checkSound(t, p, w, est, x)
	})
}

// TestSafeInputEdges: plans without products, weights that overflow alone,
// a plan without nodes, other encodings.
func TestSafeInputEdges(t *testing.T) {
	relu := onePlan([]int{2}, Node{Op: Relu})
	double := onePlan([]int{2}, Node{Op: Add, Inputs: []string{"x", "x"}})
	pool := onePlan([]int{1, 1, 2, 2}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}}})
	big, bw := seedPlan()
	bw["b"] = dense([]int{1}, 2e9)
	empty := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{2}}, Output: "x"}
	seed, sw := seedPlan()
	tests := []struct {
		name string
		p    *Plan
		w    Weights
		enc  fixed.Encoding
		want float64
	}{
		{"relu: the ring", relu, nil, enc16, limit},
		{"add: half the ring", double, nil, enc16, limit / 2},
		{"maxpool: differences", pool, nil, enc16, limit / 2},
		{"bias overflows alone", big, bw, enc16, 0},
		{"no nodes", empty, nil, enc16, limit},
		{"seed, 8 bits", seed, sw, fixed.Encoding{Frac: 8}, (math.Ldexp(1, 46) - 1000) / 6},
		{"seed, 24 bits", seed, sw, fixed.Encoding{Frac: 24}, (math.Ldexp(1, 14) - 1000) / 6},
		{"seed, 0 bits", seed, sw, fixed.Encoding{}, math.Ldexp(1, 63) / 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			est, err := EstimateRange(tc.p, tc.w, tc.enc, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !near(est.SafeInput, tc.want) && math.Abs(est.SafeInput-tc.want) > 1e-6 {
				t.Errorf("SafeInput %.17g, want %.17g", est.SafeInput, tc.want)
			}
			if (tc.want == 0) != (est.Err() != nil) {
				t.Errorf("Err() = %v", est.Err())
			}
		})
	}
	est, _ := EstimateRange(empty, nil, enc16, 3)
	if est.Largest != -1 || est.LargestProduct != -1 || est.Tightest != -1 || est.OutputBound != 3+ulp/2 || est.OutputLimit != safe {
		t.Errorf("no nodes: %+v", est)
	}
	if err := est.Err(); err != nil {
		t.Errorf("no nodes: %v", err)
	}
	est, _ = EstimateRange(empty, nil, enc16, 2*limit)
	if err := est.Err(); !errors.Is(err, ErrUnsafeRange) || !strings.Contains(err.Error(), "input bound 2.81475e+14 exceeds the encoding's limit") {
		t.Errorf("input beyond the limit: %v", err)
	}
}

// TestOutputLimit: a truncated output is at most SafeRange when correct;
// an output that adds something after its last product may be more.
func TestOutputLimit(t *testing.T) {
	seed, sw := seedPlan()
	then := func(n ...Node) *Plan {
		p, _ := seedPlan()
		p.Nodes[0].Output = "z"
		prev := "z"
		for i := range n {
			n[i].Name, n[i].Inputs, n[i].Output = string(n[i].Op), []string{prev}, string(n[i].Op)
			prev = n[i].Output
		}
		p.Nodes = append(p.Nodes, n...)
		p.Output = prev
		return p
	}
	tests := []struct {
		name   string
		p      *Plan
		capped bool
	}{
		{"matmul", seed, true},
		{"relu, reshape", then(Node{Op: Relu}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{1, 1}}}), true},
		{"small pad", then(Node{Op: Pad, Attrs: Attrs{Pads: []int{1, 1}, Value: 7}}), true},
		{"large pad", then(Node{Op: Pad, Attrs: Attrs{Pads: []int{1, 1}, Value: 2e9}}), false},
		{"integer scale", then(Node{Op: MulConst, Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{4}}}}), false},
		{"fraction scale", then(Node{Op: MulConst, Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{4.5}}}}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			est, err := EstimateRange(tc.p, sw, enc16, 1e8)
			if err != nil {
				t.Fatal(err)
			}
			want := safe
			if !tc.capped {
				want = math.Max(safe, est.OutputBound)
			}
			if est.OutputLimit != want || (!tc.capped && want == safe) {
				t.Errorf("OutputLimit %g (output bound %g), want %g", est.OutputLimit, est.OutputBound, want)
			}
		})
	}
}

// TestEstimateRangeErrors: bad arguments, and an op without a rule.
func TestEstimateRangeErrors(t *testing.T) {
	seed, sw := seedPlan()
	unknown, _ := seedPlan()
	unknown.Nodes[0].Op = "Softmax"
	tests := []struct {
		name string
		p    *Plan
		w    Weights
		enc  fixed.Encoding
		r    float64
		want string
	}{
		{"nil plan", nil, sw, enc16, 1, "estimate range: plan is nil"},
		{"nan", seed, sw, enc16, math.NaN(), "input bound NaN must be finite"},
		{"negative", seed, sw, enc16, -1, "input bound -1 must be finite"},
		{"infinite", seed, sw, enc16, math.Inf(1), "input bound +Inf must be finite"},
		{"encoding", seed, sw, fixed.Encoding{Frac: 31}, 1, "estimate range: fixed: 31 fractional bits"},
		{"missing weight", seed, Weights{"W": sw["W"]}, enc16, 1, `estimate range: weight "b" is missing`},
		{"unknown op", unknown, sw, enc16, 1, `estimate range: node /fc/Gemm (Softmax): unknown op "Softmax"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EstimateRange(tc.p, tc.w, tc.enc, tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// past validation, an op without a rule is an error naming it
	c := &rangeCompiler{enc: enc16, index: map[string]int{"x": 0}}
	if _, _, err := c.rule(&Node{Op: "Softmax", Inputs: []string{"x"}}); err == nil || err.Error() != `no range rule for op "Softmax"` {
		t.Errorf("rule(Softmax) error = %v", err)
	}
}

// TestEncodedWeights: a weight counts with its encoding when that is larger
// (1e-5 encodes as 1/65536 with 16 bits).
func TestEncodedWeights(t *testing.T) {
	p, w := seedPlan()
	w["W"] = dense([]int{2, 1}, 1e-5, 0)
	w["b"] = dense([]int{1}, 0)
	est, err := EstimateRange(p, w, enc16, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := (100 + ulp/2) * ulp; !near(est.Nodes[0].Product, want) {
		t.Errorf("product %g, want %g", est.Nodes[0].Product, want)
	}
}
