package plan

import (
	"errors"
	"math"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
)

var (
	enc16 = fixed.Default()
	ulp   = math.Ldexp(1, -16) // one unit in the last place with 16 bits
	safe  = math.Ldexp(1, 30)  // enc16.SafeRange()
	limit = math.Ldexp(1, 47)  // enc16.Limit()
)

// near reports whether got is within a relative 1e-12 of want.
func near(got, want float64) bool {
	return got == want || math.Abs(got-want) <= 1e-12*math.Max(math.Abs(got), math.Abs(want))
}

// TestEstimateRangeSeed: y = 2·x0 + 4·x1 + 1000 is bounded by 6·R + 1000
// (plus the input's rounding) and safe up to R = (2^30 - 1000) / 6.
func TestEstimateRangeSeed(t *testing.T) {
	p, w := seedPlan()
	want := (safe - 1000) / 6
	tests := []struct {
		r    float64
		safe bool
	}{{0, true}, {5, true}, {1e6, true}, {want * (1 - 1e-9), true}, {want * (1 + 1e-9), false}, {1e9, false}}
	for _, tc := range tests {
		est, err := EstimateRange(p, w, enc16, tc.r)
		if err != nil {
			t.Fatalf("R=%g: %v", tc.r, err)
		}
		n := est.Nodes[0]
		if b := 6*(tc.r+ulp/2) + 1000; !near(n.Product, b) || !near(n.Bound, b+ulp) || n.Limit != safe || n.What != "product sum" {
			t.Errorf("R=%g: node %+v, want product %g within ±%g", tc.r, n, b, safe)
		}
		if !near(est.SafeInput, want) || est.SafeInput > want {
			t.Errorf("R=%g: SafeInput %.17g, want just below %.17g", tc.r, est.SafeInput, want)
		}
		if est.Largest != 0 || est.LargestProduct != 0 || est.Tightest != 0 || est.OutputLimit != safe {
			t.Errorf("R=%g: estimate %+v", tc.r, est)
		}
		if err := est.Err(); (err == nil) != tc.safe || (err != nil && !errors.Is(err, ErrUnsafeRange)) {
			t.Errorf("R=%g: Err() = %v, want safe %v", tc.r, err, tc.safe)
		}
	}
	est, _ := EstimateRange(p, w, enc16, 1e9)
	msg := "node /fc/Gemm (MatMul): worst-case product sum 6e+09 exceeds ±1.07e+09 at input bound 1e+09 " +
		"(inputs up to ±1.78957e+08 are safe): values may overflow the fixed-point range"
	if err := est.Err(); err == nil || err.Error() != msg {
		t.Errorf("Err() = %v\nwant %s", err, msg)
	}
	// the bound is reached: x = [R, R]
	y, err := EvalPlain(p, w, dense([]int{2}, want, want))
	if err != nil || !near(y.Data[0], safe) {
		t.Errorf("EvalPlain at the safe input: %v, %v; want 2^30", y, err)
	}
}

// TestEstimateRangeOps: the rule of every op, for one node over an input
// bounded by 2 (2 + half a unit once encoded).
func TestEstimateRangeOps(t *testing.T) {
	in := 2 + ulp/2
	wv := func(name string, shape ...int) Value { return Value{Name: name, Shape: shape} }
	cst := func(v ...float64) Attrs { return Attrs{Const: &Const{Shape: []int{len(v)}, Data: v}} }
	pool := Attrs{Kernel: []int{3, 3}, Pads: []int{1, 1, 1, 1}}
	img := []int{-1, 1, 3, 3}
	tests := []struct {
		name    string
		plan    *Plan
		w       Weights
		product float64 // 0: not a truncating op
		bound   float64 // for non-truncating ops
		what    string
		out     float64 // when not 0: the output bound (piecewise ops), -1: only at least the function
	}{
		{"matmul weight right", onePlan([]int{-1, 2}, Node{Op: MatMul, Inputs: []string{"x", "W", "b"}}, wv("W", 2, 2), wv("b", 2)),
			Weights{"W": dense([]int{2, 2}, 1, -2, 3, 0.5), "b": dense([]int{2}, 0.25, -1)}, 4*in + 0.25, 0, "", 0},
		{"matmul weight left", onePlan([]int{2, 3}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, wv("W", 2, 2)),
			Weights{"W": dense([]int{2, 2}, 1, -3, 0.5, 0.5)}, 4 * in, 0, "", 0},
		{"matmul activations", onePlan([]int{3, 3}, Node{Op: MatMul, Inputs: []string{"x", "x"}}), Weights{}, 3 * in * in, 0, "", 0},
		{"matmul activation bias", onePlan([]int{1}, Node{Op: MatMul, Inputs: []string{"x", "W", "x"}}, wv("W", 1, 1)),
			Weights{"W": dense([]int{1, 1}, -3)}, 4 * in, 0, "", 0},
		{"conv", onePlan(img, Node{Op: Conv, Inputs: []string{"x", "W", "b"}}, wv("W", 2, 1, 2, 2), wv("b", 2)),
			Weights{"W": dense([]int{2, 1, 2, 2}, 1, -1, 1, -1, 0.5, 0.5, 0.5, 0.5), "b": dense([]int{2}, 1, -3)}, 4*in + 1, 0, "", 0},
		{"conv activations", onePlan([]int{1, 1, 2, 2}, Node{Op: Conv, Inputs: []string{"x", "x"}}), Weights{}, 4 * in * in, 0, "", 0},
		{"add", onePlan([]int{-1, 2}, Node{Op: Add, Inputs: []string{"x", "b"}}, wv("b", 2)),
			Weights{"b": dense([]int{2}, 1, -5)}, 0, in + 5, "value", 0},
		{"sub", onePlan([]int{-1, 2}, Node{Op: Sub, Inputs: []string{"b", "x"}}, wv("b", 2)),
			Weights{"b": dense([]int{2}, 1, -5)}, 0, in + 5, "value", 0},
		{"mul", onePlan([]int{-1, 2}, Node{Op: Mul, Inputs: []string{"x", "x"}}), Weights{}, in * in, 0, "", 0},
		{"mul weight", onePlan([]int{-1, 2}, Node{Op: Mul, Inputs: []string{"x", "g"}}, wv("g", 2)),
			Weights{"g": dense([]int{2}, 0.5, -3)}, 3 * in, 0, "", 0},
		{"mulconst fraction", onePlan([]int{-1, 2}, Node{Op: MulConst, Attrs: cst(0.5, -0.25)}), nil, 0.5 * in, 0, "", 0},
		{"mulconst integer", onePlan([]int{-1, 2}, Node{Op: MulConst, Attrs: cst(2, -3)}), nil, 0, 3 * in, "value", 0},
		{"relu", onePlan([]int{-1, 2}, Node{Op: Relu}), nil, 0, in, "value", 0},
		{"maxpool", onePlan(img, Node{Op: MaxPool, Attrs: pool}), nil, 0, in, "pairwise difference", 0},
		{"averagepool", onePlan(img, Node{Op: AveragePool, Attrs: pool}), nil, in * 65538 / 65536, 0, "", 0},
		{"globalaveragepool", onePlan(img, Node{Op: GlobalAveragePool}), nil, in * 65538 / 65536, 0, "", 0},
		{"pad", onePlan([]int{-1, 2}, Node{Op: Pad, Attrs: Attrs{Pads: []int{0, 1, 0, 1}, Value: -5}}), nil, 0, 5, "value", 0},
		{"pad small value", onePlan([]int{-1, 2}, Node{Op: Pad, Attrs: Attrs{Pads: []int{0, 1, 0, 1}, Value: 1}}), nil, 0, in, "value", 0},
		{"flatten", onePlan(img, Node{Op: Flatten, Attrs: Attrs{Axis: 1}}), nil, 0, in, "value", 0},
		{"reshape", onePlan(img, Node{Op: Reshape, Attrs: Attrs{Shape: []int{-1, 9}}}), nil, 0, in, "value", 0},
		{"identity", onePlan([]int{-1, 2}, Node{Op: Identity}), nil, 0, in, "value", 0},
		{"concat", onePlan([]int{-1, 2}, Node{Op: Concat, Inputs: []string{"x", "b", "x"}, Attrs: Attrs{Axis: 1}}, wv("b", 1, 2)),
			Weights{"b": dense([]int{1, 2}, 1, -5)}, 0, 5, "value", 0},
		{"transpose", onePlan(img, Node{Op: Transpose, Attrs: Attrs{Perm: []int{0, 3, 2, 1}}}), nil, 0, in, "value", 0},
		{"slice", onePlan(img, Node{Op: Slice, Attrs: Attrs{Axes: []int{2}, Starts: []int{2}, Ends: []int{-1}, Steps: []int{-2}}}), nil, 0, in, "value", 0},
		{"gather", onePlan(img, Node{Op: Gather, Attrs: Attrs{Axis: 3, Indices: []int{2, 0}, IndexShape: []int{2}}}), nil, 0, in, "value", 0},
		{"reducesum", onePlan(img, Node{Op: ReduceSum, Attrs: Attrs{Axes: []int{2, 3}}}), nil, 0, 9 * in, "value", 0},
		{"relu6", onePlan([]int{-1, 2}, Node{Op: Clip, Attrs: Attrs{Min: ptr(0), Max: ptr(6)}}), nil, 0, in + 6, "value", in + 4*ulp},
		{"clip max", onePlan([]int{-1, 2}, Node{Op: Clip, Attrs: Attrs{Max: ptr(-1)}}), nil, 0, in + 1, "value", in + 4*ulp},
		{"leakyrelu", onePlan([]int{-1, 2}, Node{Op: LeakyRelu, Attrs: Attrs{Alpha: 0.1}}), nil, in, 0, "", in + 4*ulp},
		{"prelu", onePlan([]int{-1, 2}, Node{Op: PRelu, Attrs: Attrs{Const: &Const{Shape: []int{2}, Data: []float64{0.5, -2}}}}),
			nil, 2 * in, 0, "", 2*in + (1+in+in*in)*ulp/2 + 4*ulp},
		{"hardsigmoid", onePlan([]int{-1, 2}, Node{Op: HardSigmoid, Attrs: Attrs{Alpha: 0.25, Beta: 0.5}}), nil, 0.25*in + 0.5 + ulp + 1, 0, "", 1 + 4*ulp},
		{"hardswish", onePlan([]int{-1, 2}, Node{Op: HardSwish}), nil, 0, in + 3, "value", in/2 + in*in/6 + (1+in+in*in)*ulp/2 + 4*ulp},
		{"sigmoid", onePlan([]int{-1, 2}, Node{Op: Sigmoid}), nil, 0, in + 9, "value", -1},
		{"silu", onePlan([]int{-1, 2}, Node{Op: SiLU}), nil, 0, in + 16, "value", -1},
	}
	covered := map[Op]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			covered[tc.plan.Nodes[0].Op] = true
			est, err := EstimateRange(tc.plan, tc.w, enc16, 2)
			if err != nil {
				t.Fatal(err)
			}
			n := est.Nodes[0]
			want := NodeRange{Index: 0, Name: tc.plan.Nodes[0].Name, Op: tc.plan.Nodes[0].Op,
				Bound: tc.bound, Checked: tc.bound, Limit: limit, What: tc.what}
			switch {
			case tc.product > 0:
				want.Bound, want.Product, want.Checked, want.Limit, want.What = tc.product+ulp, tc.product, tc.product, safe, "product sum"
			case tc.what == "pairwise difference":
				want.Checked = 2 * tc.bound
			}
			switch {
			case tc.out > 0:
				want.Bound = tc.out
			case tc.out < 0:
				// at least the function's largest value on [-in, in], and
				// not much more
				pw, _ := PiecewiseOf(&tc.plan.Nodes[0])
				top := 0.0
				for x := -in; x <= in; x += 1.0 / 1024 {
					top = math.Max(top, math.Abs(pw.Eval(x, 0)))
				}
				if n.Bound < top || n.Bound > 1.3*top+1e-3 {
					t.Errorf("bound %v for a function reaching %v", n.Bound, top)
				}
				want.Bound = n.Bound
			}
			if n.Index != want.Index || n.Name != want.Name || n.Op != want.Op || n.What != want.What || n.Limit != want.Limit ||
				!near(n.Bound, want.Bound) || !near(n.Product, want.Product) || !near(n.Checked, want.Checked) {
				t.Errorf("got  %+v\nwant %+v", n, want)
			}
		})
	}
	for _, op := range Ops {
		if !covered[op] {
			t.Errorf("op %s has no test", op)
		}
	}
}

// TestEstimateRangeMLP: a two-layer MLP with a ReLU, by hand.
func TestEstimateRangeMLP(t *testing.T) {
	p, w := mlpPlan()
	est, err := EstimateRange(p, w, enc16, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := 1 + ulp/2
	h := math.Max(1.5*in+0.5, 2*in+0.25) + ulp // fc1: columns |W1| = 1.5, 2, 1.25; biases 0.5, -0.25, 0
	y := math.Max(3*h+1, 1.5*h)                // fc2: columns 3, 1.5; biases 1, 0
	wants := []float64{h, h, y + ulp}
	for i, want := range wants {
		if !near(est.Nodes[i].Bound, want) {
			t.Errorf("node %s: bound %.17g, want %.17g", est.Nodes[i].Name, est.Nodes[i].Bound, want)
		}
	}
	// every check is affine: 3·(2·(R + ulp/2) + 0.25 + ulp) + 1 <= 2^30
	r := ((safe-1)/3-0.25-ulp)/2 - ulp/2
	if !near(est.SafeInput, r) || est.Largest != 2 || est.LargestProduct != 2 || est.Tightest != 2 {
		t.Errorf("estimate %+v, want SafeInput %.17g and node 2 the largest", est, r)
	}
}

// mlpPlan is x [-1, 2] -> fc1 [2, 3] -> Relu -> fc2 [3, 2].
func mlpPlan() (*Plan, Weights) {
	p := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{-1, 2}}, Output: "y",
		Weights: []Value{{Name: "W1", Shape: []int{2, 3}}, {Name: "b1", Shape: []int{3}},
			{Name: "W2", Shape: []int{3, 2}}, {Name: "b2", Shape: []int{2}}},
		Nodes: []Node{
			{Name: "fc1", Op: MatMul, Inputs: []string{"x", "W1", "b1"}, Output: "h"},
			{Name: "relu", Op: Relu, Inputs: []string{"h"}, Output: "r"},
			{Name: "fc2", Op: MatMul, Inputs: []string{"r", "W2", "b2"}, Output: "y"},
		}}
	w := Weights{
		"W1": dense([]int{2, 3}, 1, -1, 0.25, 0.5, 1, -1), "b1": dense([]int{3}, 0.5, -0.25, 0),
		"W2": dense([]int{3, 2}, 1, 0.5, -1, 0.5, 1, -0.5), "b2": dense([]int{2}, 1, 0),
	}
	return p, w
}

// cnnPlan is a small CNN with every windowed op: Conv, ReLU, Pad, MaxPool,
// AveragePool, GlobalAveragePool, Flatten and a linear layer.
func cnnPlan() (*Plan, Weights) {
	p := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{-1, 1, 6, 6}}, Output: "y",
		Weights: []Value{{Name: "K", Shape: []int{2, 1, 3, 3}}, {Name: "kb", Shape: []int{2}},
			{Name: "K2", Shape: []int{2, 1, 2, 2}}, {Name: "W", Shape: []int{2, 3}}, {Name: "b", Shape: []int{3}}},
		Nodes: []Node{
			{Name: "scale", Op: MulConst, Inputs: []string{"x"}, Output: "s", Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{0.1}}}},
			{Name: "conv", Op: Conv, Inputs: []string{"s", "K", "kb"}, Output: "c", Attrs: Attrs{Pads: []int{1, 1, 1, 1}}},
			{Name: "relu", Op: Relu, Inputs: []string{"c"}, Output: "r"},
			{Name: "pad", Op: Pad, Inputs: []string{"r"}, Output: "pd", Attrs: Attrs{Pads: []int{0, 0, 1, 1, 0, 0, 1, 1}}},
			{Name: "max", Op: MaxPool, Inputs: []string{"pd"}, Output: "m", Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}},
			{Name: "avg", Op: AveragePool, Inputs: []string{"m"}, Output: "a", Attrs: Attrs{Kernel: []int{3, 3}, Pads: []int{1, 1, 1, 1}}},
			{Name: "dw", Op: Conv, Inputs: []string{"a", "K2"}, Output: "d", Attrs: Attrs{Group: 2}},
			{Name: "gap", Op: GlobalAveragePool, Inputs: []string{"d"}, Output: "g"},
			{Name: "flat", Op: Flatten, Inputs: []string{"g"}, Output: "f", Attrs: Attrs{Axis: 1}},
			{Name: "fc", Op: MatMul, Inputs: []string{"f", "W", "b"}, Output: "y"},
		}}
	w := Weights{
		"K":  dense([]int{2, 1, 3, 3}, 1, -2, 1, 0.5, 3, -0.5, 1, 0, -1, -1, -1, -1, 2, 2, 2, 0.1, 0.2, 0.3),
		"kb": dense([]int{2}, 0.5, -2), "K2": dense([]int{2, 1, 2, 2}, 1, -1, 2, 0.5, -3, 1, 1, 0.25),
		"W": dense([]int{2, 3}, 1, -2, 0.5, 3, 0.25, -1), "b": dense([]int{3}, 0.1, 0, -0.3),
	}
	return p, w
}

// mixPlan uses the remaining ops: Add, Sub, Mul of two activations, an
// integer MulConst, a weight on MatMul's left, Reshape and Identity.
func mixPlan() (*Plan, Weights) {
	p := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{2, 3}}, Output: "y",
		Weights: []Value{{Name: "L", Shape: []int{2, 2}}, {Name: "c", Shape: []int{3}}},
		Nodes: []Node{
			{Name: "left", Op: MatMul, Inputs: []string{"L", "x"}, Output: "l"},
			{Name: "add", Op: Add, Inputs: []string{"l", "c"}, Output: "a"},
			{Name: "sq", Op: Mul, Inputs: []string{"a", "x"}, Output: "q"},
			{Name: "sub", Op: Sub, Inputs: []string{"q", "l"}, Output: "d"},
			{Name: "int", Op: MulConst, Inputs: []string{"d"}, Output: "i", Attrs: Attrs{Const: &Const{Shape: []int{3}, Data: []float64{3, -2, 1}}}},
			{Name: "re", Op: Reshape, Inputs: []string{"i"}, Output: "r", Attrs: Attrs{Shape: []int{3, 2}}},
			{Name: "id", Op: Identity, Inputs: []string{"r"}, Output: "y"},
		}}
	w := Weights{"L": dense([]int{2, 2}, 1, -0.5, 2, 0.75), "c": dense([]int{3}, -1, 0.5, 2)}
	return p, w
}

// TestOutputCapped checks the plan-only test for "a correct output never
// exceeds SafeRange": a product's output (bias included), also after a
// Relu, is capped; an Add after the last product is not.
func TestOutputCapped(t *testing.T) {
	enc := fixed.Default()
	seed, _ := seedPlan()
	relu := clonePlanWith(seed, Node{Name: "/relu", Op: Relu, Inputs: []string{"y"}, Output: "z"})
	added := clonePlanWith(seed, Node{Name: "/add", Op: Add, Inputs: []string{"y", "y"}, Output: "z"})
	for _, tc := range []struct {
		name string
		p    *Plan
		want bool
	}{{"matmul", seed, true}, {"matmul relu", relu, true}, {"add after the product", added, false}} {
		got, err := OutputCapped(tc.p, enc)
		if err != nil || got != tc.want {
			t.Errorf("%s: OutputCapped = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// clonePlanWith returns p with n appended as its new output node.
func clonePlanWith(p *Plan, n Node) *Plan {
	c := *p
	c.Nodes = append(append([]Node(nil), p.Nodes...), n)
	c.Output = n.Output
	return &c
}

func ptr(v float64) *float64 { return &v }
