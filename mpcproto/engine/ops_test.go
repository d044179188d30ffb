package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/quick"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Values in these tests are multiples of 1/64 in [-4, 4]: exactly
// representable, so the only errors are the engine's (truncation: less than
// 2^-16 each; encodings of public non-dyadic constants: 2^-17 times the
// value they scale).

func randVals(r *rand.Rand, shape ...int) *tensor.Dense[float64] {
	t := tensor.New[float64](shape...)
	for i := range t.Data {
		t.Data[i] = float64(r.IntN(513)-256) / 64
	}
	return t
}

func onePlan(in []int, out string, weights []plan.Value, nodes ...plan.Node) *plan.Plan {
	return &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: in}, Output: out, Weights: weights, Nodes: nodes}
}

type opCase struct {
	name string
	tol  float64
	gen  func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64])
}

func opCases() []opCase {
	pick := func(r *rand.Rand, xs ...int) int { return xs[r.IntN(len(xs))] }
	return []opCase{
		{"MatMul", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			b, k, n := 1+r.IntN(3), 1+r.IntN(9), 1+r.IntN(5)
			inputs := []string{"x", "w"}
			wv := []plan.Value{{Name: "w", Shape: []int{k, n}}}
			ws := plan.Weights{"w": randVals(r, k, n)}
			if r.IntN(2) == 0 {
				inputs = append(inputs, "b")
				wv = append(wv, plan.Value{Name: "b", Shape: []int{n}})
				ws["b"] = randVals(r, n)
			}
			p := onePlan([]int{-1, k}, "y", wv, plan.Node{Name: "mm", Op: plan.MatMul, Inputs: inputs, Output: "y"})
			return p, ws, randVals(r, b, k)
		}},
		{"MatMul1D", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			k, n := 1+r.IntN(9), 1+r.IntN(5)
			p := onePlan([]int{k}, "y", []plan.Value{{Name: "w", Shape: []int{k, n}}},
				plan.Node{Name: "mm", Op: plan.MatMul, Inputs: []string{"x", "w"}, Output: "y"})
			return p, plan.Weights{"w": randVals(r, k, n)}, randVals(r, k)
		}},
		{"MatMulLeft", 1.0 / (1 << 13), matMulLeftCase},
		{"Conv", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			g := 1 + r.IntN(2)
			c, m := g*(1+r.IntN(2)), g*(1+r.IntN(2))
			kh, kw := 1+r.IntN(3), 1+r.IntN(3)
			h, w := kh+2+r.IntN(3), kw+2+r.IntN(3)
			attrs := plan.Attrs{Strides: []int{1 + r.IntN(2), 1 + r.IntN(2)}, Pads: []int{r.IntN(2), r.IntN(2), r.IntN(2), r.IntN(2)},
				Dilations: []int{1, 1 + r.IntN(2)}, Group: g}
			if kw*attrs.Dilations[1] > w {
				attrs.Dilations[1] = 1
			}
			inputs := []string{"x", "k"}
			wv := []plan.Value{{Name: "k", Shape: []int{m, c / g, kh, kw}}}
			ws := plan.Weights{"k": randVals(r, m, c/g, kh, kw)}
			if r.IntN(2) == 0 {
				inputs = append(inputs, "b")
				wv = append(wv, plan.Value{Name: "b", Shape: []int{m}})
				ws["b"] = randVals(r, m)
			}
			p := onePlan([]int{-1, c, h, w}, "y", wv, plan.Node{Name: "conv", Op: plan.Conv, Inputs: inputs, Output: "y", Attrs: attrs})
			return p, ws, randVals(r, 1+r.IntN(2), c, h, w)
		}},
		{"ConvDepthwise", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			// group = channels (MobileNet's, MnasNet's, EfficientNet's), a
			// channel multiplier of 1 or 2, 3x3 or 5x5 kernels
			c, mult, k := 2+r.IntN(3), 1+r.IntN(2), []int{3, 5}[r.IntN(2)]
			attrs := plan.Attrs{Strides: []int{1 + r.IntN(2), 1 + r.IntN(2)}, Pads: []int{k / 2, k / 2, k / 2, k / 2}, Group: c}
			p := onePlan([]int{-1, c, 5, 6}, "y", []plan.Value{{Name: "k", Shape: []int{c * mult, 1, k, k}}, {Name: "b", Shape: []int{c * mult}}},
				plan.Node{Name: "dw", Op: plan.Conv, Inputs: []string{"x", "k", "b"}, Output: "y", Attrs: attrs})
			return p, plan.Weights{"k": randVals(r, c*mult, 1, k, k), "b": randVals(r, c*mult)}, randVals(r, 1+r.IntN(2), c, 5, 6)
		}},
		{"Add", 0, binCase(plan.Add)},
		{"Sub", 0, binCase(plan.Sub)},
		{"Mul", 1.0 / (1 << 14), binCase(plan.Mul)},
		{"MulSelf", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			p := onePlan([]int{-1, 5}, "y", nil, plan.Node{Name: "sq", Op: plan.Mul, Inputs: []string{"x", "x"}, Output: "y"})
			return p, plan.Weights{}, randVals(r, 2, 5)
		}},
		{"MulConst", 1.0 / (1 << 14), func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			c := &plan.Const{Data: []float64{[]float64{0.3, -1.7, 3, 0.125, -2}[r.IntN(5)]}}
			if r.IntN(2) == 0 {
				c = &plan.Const{Shape: []int{3}, Data: []float64{0.1, -2, 1.5}}
			}
			p := onePlan([]int{-1, 2, 3}, "y", nil, plan.Node{Name: "mc", Op: plan.MulConst, Inputs: []string{"x"}, Output: "y", Attrs: plan.Attrs{Const: c}})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(3), 2, 3)
		}},
		{"Relu", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			p := onePlan([]int{-1, 7}, "y", nil, plan.Node{Name: "relu", Op: plan.Relu, Inputs: []string{"x"}, Output: "y"})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(4), 7)
		}},
		{"MaxPool", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			k := pick(r, 1, 2, 3)
			attrs := plan.Attrs{Kernel: []int{k, pick(r, 2, 3)}, Strides: []int{pick(r, 1, 2), pick(r, 1, 2)},
				CeilMode: r.IntN(2) == 0}
			if k > 1 && r.IntN(2) == 0 {
				attrs.Pads = []int{1, 0, 1, 1}
			}
			if r.IntN(3) == 0 {
				attrs.Dilations = []int{2, 1}
			}
			p := onePlan([]int{-1, 2, 6, 5}, "y", nil, plan.Node{Name: "mp", Op: plan.MaxPool, Inputs: []string{"x"}, Output: "y", Attrs: attrs})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 2, 6, 5)
		}},
		{"AveragePool", 1e-3, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			attrs := plan.Attrs{Kernel: []int{pick(r, 2, 3), pick(r, 1, 3)}, Strides: []int{pick(r, 1, 2), pick(r, 1, 2)},
				CeilMode: r.IntN(2) == 0, CountIncludePad: r.IntN(2) == 0}
			if r.IntN(2) == 0 {
				attrs.Pads = []int{1, 0, 1, 0}
			}
			p := onePlan([]int{-1, 3, 5, 6}, "y", nil, plan.Node{Name: "ap", Op: plan.AveragePool, Inputs: []string{"x"}, Output: "y", Attrs: attrs})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 3, 5, 6)
		}},
		{"GlobalAveragePool", 1e-3, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			p := onePlan([]int{-1, 3, 4, 3}, "y", nil, plan.Node{Name: "gap", Op: plan.GlobalAveragePool, Inputs: []string{"x"}, Output: "y"})
			return p, plan.Weights{}, randVals(r, 2, 3, 4, 3)
		}},
		{"Pad", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			attrs := plan.Attrs{Pads: []int{0, 0, r.IntN(3), r.IntN(2), 0, 0, r.IntN(2), r.IntN(3)}, Value: []float64{0, 1.5, -2}[r.IntN(3)]}
			p := onePlan([]int{-1, 2, 3, 3}, "y", nil, plan.Node{Name: "pad", Op: plan.Pad, Inputs: []string{"x"}, Output: "y", Attrs: attrs})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 2, 3, 3)
		}},
		{"FusedTruncRelu", 0.01, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			// products followed by a ReLU (truncation and sign test fused),
			// with the product also used after the ReLU
			p := onePlan([]int{-1, 3}, "s", []plan.Value{{Name: "w", Shape: []int{3, 3}}, {Name: "b", Shape: []int{3}}},
				plan.Node{Name: "mm", Op: plan.MatMul, Inputs: []string{"x", "w", "b"}, Output: "m"},
				plan.Node{Name: "r1", Op: plan.Relu, Inputs: []string{"m"}, Output: "r"},
				plan.Node{Name: "sum", Op: plan.Add, Inputs: []string{"r", "m"}, Output: "a"},
				plan.Node{Name: "third", Op: plan.MulConst, Inputs: []string{"a"}, Output: "t", Attrs: plan.Attrs{Const: &plan.Const{Data: []float64{-0.3}}}},
				plan.Node{Name: "r2", Op: plan.Relu, Inputs: []string{"t"}, Output: "u"},
				plan.Node{Name: "sq", Op: plan.Mul, Inputs: []string{"u", "t"}, Output: "q"},
				plan.Node{Name: "r3", Op: plan.Relu, Inputs: []string{"q"}, Output: "s"})
			return p, plan.Weights{"w": randVals(r, 3, 3), "b": randVals(r, 3)}, randVals(r, 1+r.IntN(3), 3)
		}},
		{"FlattenReshapeIdentity", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			p := onePlan([]int{-1, 2, 3, 2}, "z", nil,
				plan.Node{Name: "flat", Op: plan.Flatten, Inputs: []string{"x"}, Output: "f", Attrs: plan.Attrs{Axis: 1}},
				plan.Node{Name: "rs", Op: plan.Reshape, Inputs: []string{"f"}, Output: "g", Attrs: plan.Attrs{Shape: []int{0, 3, -1}}},
				plan.Node{Name: "id", Op: plan.Identity, Inputs: []string{"g"}, Output: "z"})
			return p, plan.Weights{}, randVals(r, 2, 2, 3, 2)
		}},
	}
}

// binCase is a two-input op of the input and a secret weight whose shape
// broadcasts against it.
func binCase(op plan.Op) func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
	return func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
		ws := [][]int{{4}, {3, 1}, {1, 4}, {3, 4}, {1}}[r.IntN(5)]
		p := onePlan([]int{-1, 3, 4}, "y", []plan.Value{{Name: "w", Shape: ws}},
			plan.Node{Name: "bin", Op: op, Inputs: []string{"x", "w"}, Output: "y"})
		return p, plan.Weights{"w": randVals(r, ws...)}, randVals(r, 1+r.IntN(3), 3, 4)
	}
}

// compare runs p securely with n parties and checks the result against the
// plaintext twin within tol.
func compare(t *testing.T, label string, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64], n int, tol float64) Stats {
	t.Helper()
	want, err := plan.EvalPlain(p, w, x)
	if err != nil {
		t.Fatalf("%s: plaintext twin: %v", label, err)
	}
	got, st, err := RunLocal(context.Background(), p, w, x, n)
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("%s: shape %v, twin %v", label, got.Shape, want.Shape)
	}
	for i := range got.Data {
		if d := math.Abs(got.Data[i] - want.Data[i]); d > tol {
			t.Fatalf("%s: element %d = %v, twin %v (|diff| %g > %g)", label, i, got.Data[i], want.Data[i], d, tol)
		}
	}
	return st
}

// TestOpsAgainstTwin evaluates every op on random shapes and values for N =
// 2, 3 and 4 and compares with plan.EvalPlain.
func TestOpsAgainstTwin(t *testing.T) {
	for ci, tc := range opCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 11))
			for it := range 4 {
				p, w, x := tc.gen(r)
				for _, n := range []int{2, 3, 4} {
					compare(t, fmt.Sprintf("instance %d N=%d", it, n), p, w, x, n, tc.tol)
				}
			}
		})
	}
}

// TestSmallCNNAgainstTwin chains the ops of a small CNN.
func TestSmallCNNAgainstTwin(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	p, w := smallCNN(r)
	for i := range w["k"].Data {
		w["k"].Data[i] /= 4
	}
	x := randVals(r, 3, 1, 8, 8)
	for _, n := range []int{2, 3, 4} {
		st := compare(t, fmt.Sprintf("N=%d", n), p, w, x, n, 0.01)
		if want := roundsFor(n, smallCNNRounds, smallCNNRoundsFSS); st.Rounds != want {
			t.Errorf("N=%d: %d rounds, want %d", n, st.Rounds, want)
		}
	}
}

// TestManyParties: any N works, here 7 parties on a small CNN.
func TestManyParties(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	p, w := smallCNN(r)
	compare(t, "N=7", p, w, randVals(r, 2, 1, 8, 8), 7, 0.01)
}

// TestReluProperty is a testing/quick property: relu on shares of any
// int16-scaled values equals max(x, 0) exactly.
func TestReluProperty(t *testing.T) {
	p := onePlan([]int{-1}, "y", nil, plan.Node{Name: "relu", Op: plan.Relu, Inputs: []string{"x"}, Output: "y"})
	f := func(vals []int16, n8 uint8) bool {
		if len(vals) == 0 {
			return true
		}
		x := tensor.New[float64](len(vals))
		for i, v := range vals {
			x.Data[i] = float64(v) / 16
		}
		y, _, err := RunLocal(context.Background(), p, plan.Weights{}, x, 2+int(n8%3))
		if err != nil {
			return false
		}
		for i, v := range x.Data {
			if y.Data[i] != math.Max(v, 0) {
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 30}); err != nil {
		t.Fatal(err)
	}
}

// matMulLeftCase is one of matMulForms at random.
func matMulLeftCase(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
	return matMulForm(r, r.IntN(matMulForms))
}

// matMulForms is the number of forms of matMulForm.
const matMulForms = 11

// matMulForm is a MatMul in form i: one of the forms torch exports with
// the weight on the left (W @ x: 1-D and 2-D weights, 1-D, 2-D and batched
// x, a batched weight, broadcast batches), a 1-D or 2-D weight on the
// right, or the product of the input with itself; with a bias at random
// when the output has a last dimension.
func matMulForm(r *rand.Rand, i int) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
	m, k, n, b := 1+r.IntN(4), 1+r.IntN(5), 1+r.IntN(4), 1+r.IntN(3)
	type form struct {
		w, in, x []int // weight, plan input and sample shapes
		left     bool  // the weight is input 0
		self     bool  // x times x
	}
	forms := [matMulForms]form{
		{w: []int{k}, in: []int{k}, x: []int{k}, left: true},
		{w: []int{k}, in: []int{k, n}, x: []int{k, n}, left: true},
		{w: []int{m, k}, in: []int{k}, x: []int{k}, left: true},
		{w: []int{m, k}, in: []int{k, n}, x: []int{k, n}, left: true},
		{w: []int{m, k}, in: []int{-1, k, n}, x: []int{b, k, n}, left: true},
		{w: []int{b, m, k}, in: []int{-1, k, n}, x: []int{b, k, n}, left: true},
		{w: []int{1, m, k}, in: []int{-1, k, n}, x: []int{b, k, n}, left: true},
		{w: []int{1, 2, m, k}, in: []int{-1, 1, k, n}, x: []int{b, 1, k, n}, left: true},
		{w: []int{k}, in: []int{-1, k}, x: []int{b, k}},
		{w: []int{k, n}, in: []int{-1, m, k}, x: []int{b, m, k}},
		{in: []int{-1, k, k}, x: []int{b, k, k}, self: true},
	}
	f := forms[i]
	var wv []plan.Value
	ws := plan.Weights{}
	inputs := []string{"x", "x"}
	if !f.self {
		wv = append(wv, plan.Value{Name: "w", Shape: f.w})
		ws["w"] = randVals(r, f.w...)
		inputs = []string{"x", "w"}
		if f.left {
			inputs = []string{"w", "x"}
		}
	}
	p := onePlan(f.in, "y", wv, plan.Node{Name: "mm", Op: plan.MatMul, Inputs: inputs, Output: "y"})
	batch := 1
	if f.in[0] == -1 {
		batch = f.x[0]
	}
	if shapes, err := p.Shapes(batch); err == nil && len(shapes["y"]) > 0 && r.IntN(2) == 0 {
		last := shapes["y"][len(shapes["y"])-1]
		p.Weights = append(p.Weights, plan.Value{Name: "bias", Shape: []int{last}})
		p.Nodes[0].Inputs = append(p.Nodes[0].Inputs, "bias")
		ws["bias"] = randVals(r, last)
	}
	return p, ws, randVals(r, f.x...)
}

// moveCases are the local ops that move or sum shares: Concat (of the
// input, a weight and a ReLU of the input, on any axis), Transpose,
// Slice (negative steps too), Gather and ReduceSum (keepdims both ways),
// and shufflenet's channel shuffle (Reshape, Transpose, Reshape).
func moveCases() []opCase {
	return []opCase{
		{"Concat", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			axis := r.IntN(3)
			ws := []int{2, 3, 2}
			ws[axis] = 1 + r.IntN(3)
			p := onePlan([]int{-1, 3, 2}, "y", []plan.Value{{Name: "w", Shape: ws}},
				plan.Node{Name: "relu", Op: plan.Relu, Inputs: []string{"x"}, Output: "r"},
				plan.Node{Name: "cat", Op: plan.Concat, Inputs: []string{"x", "w", "r"}, Output: "y", Attrs: plan.Attrs{Axis: axis}})
			if axis != 0 {
				ws[0] = 2
				p.Input.Shape[0] = 2 // a weight's batch does not follow the input's
			}
			return p, plan.Weights{"w": randVals(r, ws...)}, randVals(r, 2, 3, 2)
		}},
		{"Transpose", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			perm := []int{0, 1, 2, 3}
			r.Shuffle(4, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			p := onePlan([]int{-1, 2, 3, 4}, "y", nil, plan.Node{Name: "t", Op: plan.Transpose, Inputs: []string{"x"}, Output: "y",
				Attrs: plan.Attrs{Perm: perm}})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 2, 3, 4)
		}},
		{"Slice", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			a := plan.Attrs{Axes: []int{2, 1}, Starts: []int{r.IntN(3), 1}, Ends: []int{5, 3}, Steps: []int{1 + r.IntN(2), 1}}
			if r.IntN(2) == 0 {
				a.Starts[0], a.Ends[0], a.Steps[0] = 4, -1, -1-r.IntN(2)
			}
			p := onePlan([]int{-1, 3, 5}, "y", nil, plan.Node{Name: "s", Op: plan.Slice, Inputs: []string{"x"}, Output: "y", Attrs: a})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 3, 5)
		}},
		{"Gather", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			a := plan.Attrs{Axis: 1 + r.IntN(2), Indices: []int{2, 0, 1, 2, 0, 0}, IndexShape: []int{2, 3}}
			if r.IntN(2) == 0 {
				a.Indices, a.IndexShape = []int{1}, []int{}
			}
			p := onePlan([]int{-1, 3, 3}, "y", nil, plan.Node{Name: "g", Op: plan.Gather, Inputs: []string{"x"}, Output: "y", Attrs: a})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 3, 3)
		}},
		{"ReduceSum", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			axes := [][]int{{1}, {2, 3}, {3, 1}, {1, 2, 3}}[r.IntN(4)]
			p := onePlan([]int{-1, 2, 3, 4}, "y", nil, plan.Node{Name: "sum", Op: plan.ReduceSum, Inputs: []string{"x"}, Output: "y",
				Attrs: plan.Attrs{Axes: axes, KeepDims: r.IntN(2) == 0}})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 2, 3, 4)
		}},
		{"ChannelShuffle", 0, func(r *rand.Rand) (*plan.Plan, plan.Weights, *tensor.Dense[float64]) {
			p := onePlan([]int{-1, 6, 2, 2}, "y", nil,
				plan.Node{Name: "split", Op: plan.Reshape, Inputs: []string{"x"}, Output: "a", Attrs: plan.Attrs{Shape: []int{0, 2, 3, 2, 2}}},
				plan.Node{Name: "swap", Op: plan.Transpose, Inputs: []string{"a"}, Output: "b", Attrs: plan.Attrs{Perm: []int{0, 2, 1, 3, 4}}},
				plan.Node{Name: "join", Op: plan.Reshape, Inputs: []string{"b"}, Output: "y", Attrs: plan.Attrs{Shape: []int{0, 6, 2, 2}}})
			return p, plan.Weights{}, randVals(r, 1+r.IntN(2), 6, 2, 2)
		}},
	}
}

// TestMovesAgainstTwin: the local index ops on shares agree exactly with
// the twin for N = 2, 3, 4.
func TestMovesAgainstTwin(t *testing.T) {
	for ci, tc := range moveCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 17))
			for it := range 4 {
				p, w, x := tc.gen(r)
				for _, n := range []int{2, 3, 4} {
					compare(t, fmt.Sprintf("instance %d N=%d", it, n), p, w, x, n, tc.tol)
				}
			}
		})
	}
}
