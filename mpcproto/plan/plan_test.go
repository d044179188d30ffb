package plan

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// seedPlan is the seed model: y = x·W + b with W = [[2],[4]], b = [1000].
func seedPlan() (*Plan, Weights) {
	p := &Plan{
		Version: Version,
		Input:   Value{Name: "x", Shape: []int{2}},
		Output:  "y",
		Weights: []Value{{Name: "W", Shape: []int{2, 1}}, {Name: "b", Shape: []int{1}}},
		Nodes:   []Node{{Name: "/fc/Gemm", Op: MatMul, Inputs: []string{"x", "W", "b"}, Output: "y"}},
	}
	w := Weights{
		"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{2, 4}},
		"b": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1000}},
	}
	return p, w
}

// onePlan is a plan with one node over an input of the given shape.
func onePlan(in []int, n Node, weights ...Value) *Plan {
	n.Output = "y"
	if n.Inputs == nil {
		n.Inputs = []string{"x"}
	}
	if n.Name == "" {
		n.Name = "/" + string(n.Op) + "_0"
	}
	return &Plan{Version: Version, Input: Value{Name: "x", Shape: in}, Output: "y", Weights: weights, Nodes: []Node{n}}
}

func TestValidateErrors(t *testing.T) {
	seed, _ := seedPlan()
	tests := []struct {
		name string
		edit func(p *Plan)
		want string
	}{
		{"ok", func(p *Plan) {}, ""},
		{"version", func(p *Plan) { p.Version = 7 }, "unsupported plan version 7"},
		{"no input name", func(p *Plan) { p.Input.Name = "" }, "plan input has no name"},
		{"free dim not leading", func(p *Plan) { p.Input.Shape = []int{2, -1} }, "dimension 1 is -1"},
		{"zero dim", func(p *Plan) { p.Input.Shape = []int{0} }, "dimension 0 is 0"},
		{"dup weight", func(p *Plan) { p.Weights[1].Name = "W" }, `weight "W": name already used`},
		{"weight shadows input", func(p *Plan) { p.Weights[0].Name = "x" }, `weight "x": name already used`},
		{"unknown op", func(p *Plan) { p.Nodes[0].Op = "Softmax" }, `node /fc/Gemm (Softmax): unknown op "Softmax"`},
		{"arity", func(p *Plan) { p.Nodes[0].Inputs = []string{"x"} }, "node /fc/Gemm (MatMul): takes 2 to 3 inputs, got 1"},
		{"undefined input", func(p *Plan) { p.Nodes[0].Inputs[1] = "V" }, `node /fc/Gemm (MatMul): input "V" is not defined before use`},
		{"output reused", func(p *Plan) { p.Nodes[0].Output = "b" }, `output "b": name already used`},
		{"no output", func(p *Plan) { p.Output = "" }, "plan has no output"},
		{"output undefined", func(p *Plan) { p.Output = "z" }, `plan output "z" is not defined`},
		{"conv pads", func(p *Plan) {
			p.Nodes[0] = Node{Name: "/Conv_3", Op: Conv, Inputs: []string{"x", "W"}, Output: "y", Attrs: Attrs{Pads: []int{1, 1}}}
		}, "node /Conv_3 (Conv): pads must have 4 values, got 2"},
		{"conv strides zero", func(p *Plan) {
			p.Nodes[0] = Node{Name: "c", Op: Conv, Inputs: []string{"x", "W"}, Output: "y", Attrs: Attrs{Strides: []int{0, 1}}}
		}, "strides [0 1]: value 0 out of range"},
		{"pool without kernel", func(p *Plan) {
			p.Nodes[0] = Node{Name: "p", Op: MaxPool, Inputs: []string{"x"}, Output: "y"}
		}, "node p (MaxPool): kernel must have 2 values, got 0"},
		{"mulconst missing", func(p *Plan) {
			p.Nodes[0] = Node{Name: "m", Op: MulConst, Inputs: []string{"x"}, Output: "y"}
		}, "node m (MulConst): const is missing"},
		{"mulconst size", func(p *Plan) {
			p.Nodes[0] = Node{Name: "m", Op: MulConst, Inputs: []string{"x"}, Output: "y", Attrs: Attrs{Const: &Const{Shape: []int{2}, Data: []float64{1}}}}
		}, "const: shape [2] holds 2 values, got 1"},
		{"mulconst nan", func(p *Plan) {
			p.Nodes[0] = Node{Name: "m", Op: MulConst, Inputs: []string{"x"}, Output: "y", Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{math.NaN()}}}}
		}, "non-finite"},
		{"pad odd", func(p *Plan) {
			p.Nodes[0] = Node{Name: "p", Op: Pad, Inputs: []string{"x"}, Output: "y", Attrs: Attrs{Pads: []int{1}}}
		}, "pads must have 2 values per axis, got 1"},
		{"reshape two free", func(p *Plan) {
			p.Nodes[0] = Node{Name: "r", Op: Reshape, Inputs: []string{"x"}, Output: "y", Attrs: Attrs{Shape: []int{-1, -1}}}
		}, "more than one -1"},
		{"unnamed node", func(p *Plan) { p.Nodes[0].Name = ""; p.Nodes[0].Op = "Bad" }, "node #0 (Bad)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := seed.Marshal()
			var p Plan
			if err := jsonUnmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			tc.edit(&p)
			err := p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestShapes(t *testing.T) {
	w := func(name string, shape ...int) Value { return Value{Name: name, Shape: shape} }
	tests := []struct {
		name    string
		plan    *Plan
		batch   int
		want    []int
		wantErr string
	}{
		{"matmul 1-D", onePlan([]int{2}, Node{Op: MatMul, Inputs: []string{"x", "W", "b"}}, w("W", 2, 1), w("b", 1)), 1, []int{1}, ""},
		{"matmul batch", onePlan([]int{-1, 64}, Node{Op: MatMul, Inputs: []string{"x", "W"}}, w("W", 64, 10)), 5, []int{5, 10}, ""},
		{"matmul 3-D", onePlan([]int{-1, 3, 4}, Node{Op: MatMul, Inputs: []string{"x", "W"}}, w("W", 4, 2)), 2, []int{2, 3, 2}, ""},
		{"matmul inner", onePlan([]int{-1, 3}, Node{Op: MatMul, Inputs: []string{"x", "W"}}, w("W", 4, 2)), 1, nil, "operand shapes [1 3] and [4 2]: inner dimensions differ"},
		{"matmul left 1-D 1-D", onePlan([]int{4}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 4)), 1, []int{}, ""},
		{"matmul left 1-D 2-D", onePlan([]int{4, 5}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 4)), 1, []int{5}, ""},
		{"matmul left 2-D 1-D", onePlan([]int{4}, Node{Op: MatMul, Inputs: []string{"W", "x", "b"}}, w("W", 3, 4), w("b", 3)), 1, []int{3}, ""},
		{"matmul left batched", onePlan([]int{-1, 4, 5}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 3, 4)), 2, []int{2, 3, 5}, ""},
		{"matmul 3-D 3-D", onePlan([]int{-1, 4, 5}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 2, 3, 4)), 2, []int{2, 3, 5}, ""},
		{"matmul broadcast", onePlan([]int{-1, 1, 4, 5}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 2, 3, 4)), 3, []int{3, 2, 3, 5}, ""},
		{"matmul batch mismatch", onePlan([]int{-1, 4, 5}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, w("W", 2, 3, 4)), 3, nil, "batch dimensions do not broadcast"},
		{"matmul scalar bias", onePlan([]int{4}, Node{Op: MatMul, Inputs: []string{"W", "x", "b"}}, w("W", 4), w("b", 1)), 1, nil, "the output is a scalar"},
		{"matmul bias", onePlan([]int{-1, 4}, Node{Op: MatMul, Inputs: []string{"x", "W", "b"}}, w("W", 4, 2), w("b", 3)), 1, nil, "bias shape [3]: want [2]"},
		{"no free dim batch 2", onePlan([]int{2}, Node{Op: Relu}), 2, nil, "batch must be 1, got 2"},
		{"batch 0", onePlan([]int{-1, 2}, Node{Op: Relu}), 0, nil, "batch 0 out of range"},
		{"conv same", onePlan([]int{-1, 1, 8, 8}, Node{Op: Conv, Inputs: []string{"x", "W", "b"}, Attrs: Attrs{Pads: []int{1, 1, 1, 1}}}, w("W", 4, 1, 3, 3), w("b", 4)), 3, []int{3, 4, 8, 8}, ""},
		{"conv stride dil", onePlan([]int{-1, 2, 9, 10}, Node{Op: Conv, Inputs: []string{"x", "W"}, Attrs: Attrs{Strides: []int{2, 3}, Dilations: []int{2, 1}, Pads: []int{0, 1, 1, 0}}}, w("W", 3, 2, 3, 2)), 1, []int{1, 3, 3, 4}, ""},
		{"conv channels", onePlan([]int{-1, 2, 8, 8}, Node{Op: Conv, Inputs: []string{"x", "W"}}, w("W", 4, 3, 3, 3)), 1, nil, "channels do not agree"},
		{"conv group", onePlan([]int{-1, 4, 5, 5}, Node{Op: Conv, Inputs: []string{"x", "W"}, Attrs: Attrs{Group: 2}}, w("W", 6, 2, 3, 3)), 1, []int{1, 6, 3, 3}, ""},
		{"conv kernel too big", onePlan([]int{-1, 1, 2, 2}, Node{Op: Conv, Inputs: []string{"x", "W"}}, w("W", 1, 1, 3, 3)), 1, nil, "kernel extent 3 exceeds padded input 2"},
		{"maxpool floor", onePlan([]int{-1, 4, 7, 7}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}}), 1, []int{1, 4, 3, 3}, ""},
		{"maxpool ceil", onePlan([]int{-1, 4, 7, 7}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}, CeilMode: true}}), 1, []int{1, 4, 4, 4}, ""},
		// ceil with padding: a window starting in the end padding is dropped
		{"avgpool ceil drop", onePlan([]int{-1, 1, 5, 5}, Node{Op: AveragePool, Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}, Pads: []int{1, 1, 1, 1}, CeilMode: true}}), 1, []int{1, 1, 3, 3}, ""},
		{"pool window in begin padding", onePlan([]int{-1, 1, 4, 4}, Node{Op: AveragePool, Attrs: Attrs{Kernel: []int{2, 2}, Pads: []int{2, 0, 0, 0}}}), 1, nil, "a window lies entirely in the padding"},
		{"pool window in end padding", onePlan([]int{-1, 1, 4, 4}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{1, 1}, Strides: []int{2, 2}, Pads: []int{0, 0, 0, 2}}}), 1, nil, "a window lies entirely in the padding"},
		// torch's ceil-mode emulation before opset 10: end pads past the kernel
		{"pool end pad past kernel", onePlan([]int{-1, 1, 5, 5}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{1, 1}, Strides: []int{2, 2}, Pads: []int{0, 0, 1, 1}}}), 1, []int{1, 1, 3, 3}, ""},
		{"pool rank", onePlan([]int{-1, 4}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}}}), 1, nil, "input shape [1 4]: want rank 4"},
		{"gap", onePlan([]int{-1, 3, 4, 5}, Node{Op: GlobalAveragePool}), 2, []int{2, 3, 1, 1}, ""},
		{"add broadcast", onePlan([]int{-1, 3, 4, 4}, Node{Op: Add, Inputs: []string{"x", "b"}}, w("b", 3, 1, 1)), 2, []int{2, 3, 4, 4}, ""},
		{"sub broadcast both", onePlan([]int{-1, 1, 4}, Node{Op: Sub, Inputs: []string{"x", "b"}}, w("b", 3, 1)), 2, []int{2, 3, 4}, ""},
		{"mul mismatch", onePlan([]int{-1, 3}, Node{Op: Mul, Inputs: []string{"x", "b"}}, w("b", 4)), 1, nil, "shapes [1 3] and [4] do not broadcast"},
		{"mulconst", onePlan([]int{-1, 3, 2, 2}, Node{Op: MulConst, Attrs: Attrs{Const: &Const{Shape: []int{3, 1, 1}, Data: []float64{1, 2, 3}}}}), 1, []int{1, 3, 2, 2}, ""},
		{"pad", onePlan([]int{-1, 1, 8, 8}, Node{Op: Pad, Attrs: Attrs{Pads: []int{0, 0, 1, 2, 0, 0, 3, 4}}}), 1, []int{1, 1, 12, 14}, ""},
		{"pad rank", onePlan([]int{-1, 1, 8, 8}, Node{Op: Pad, Attrs: Attrs{Pads: []int{1, 1, 1, 1}}}), 1, nil, "pads [1 1 1 1]: want 8 values for input shape [1 1 8 8]"},
		{"flatten", onePlan([]int{-1, 4, 2, 2}, Node{Op: Flatten, Attrs: Attrs{Axis: 1}}), 3, []int{3, 16}, ""},
		{"flatten axis 0", onePlan([]int{-1, 4}, Node{Op: Flatten}), 3, []int{1, 12}, ""},
		{"flatten negative", onePlan([]int{-1, 4, 2, 2}, Node{Op: Flatten, Attrs: Attrs{Axis: -2}}), 3, []int{12, 4}, ""},
		{"flatten out of range", onePlan([]int{-1, 4}, Node{Op: Flatten, Attrs: Attrs{Axis: 3}}), 1, nil, "axis 3 out of range"},
		{"reshape 0 -1", onePlan([]int{-1, 4, 2, 2}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{0, -1}}}), 5, []int{5, 16}, ""},
		{"reshape -1 first", onePlan([]int{-1, 4, 2, 2}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{-1, 8}}}), 5, []int{10, 8}, ""},
		{"reshape bad", onePlan([]int{-1, 4, 2, 2}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{0, 3, -1}}}), 1, nil, "cannot reshape input shape [1 4 2 2] (16 elements) to [0 3 -1]"},
		{"reshape count", onePlan([]int{-1, 4}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{0, 5}}}), 1, nil, "cannot reshape"},
		{"outer product too big", onePlan([]int{-1, 1}, Node{Op: Mul, Inputs: []string{"x", "b"}}, w("b", 1<<20)), 1 << 20, nil, "output: shape [1048576 1048576] holds more than"},
		{"identity", onePlan([]int{3}, Node{Op: Identity}), 1, []int{3}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.plan.Shapes(tc.batch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Shapes error = %v, want it to contain %q", err, tc.wantErr)
				}
				if tc.plan.Nodes[0].Name != "" && strings.Contains(tc.wantErr, "shape") && !strings.Contains(err.Error(), tc.plan.Nodes[0].Name) {
					t.Errorf("error %q does not name node %s", err, tc.plan.Nodes[0].Name)
				}
				return
			}
			if err != nil {
				t.Fatalf("Shapes: %v", err)
			}
			if !reflect.DeepEqual(got["y"], tc.want) {
				t.Fatalf("shape of y = %v, want %v", got["y"], tc.want)
			}
		})
	}
}

func TestWindowOut(t *testing.T) {
	tests := []struct {
		in, k, s, b, e, d int
		ceil              bool
		want              int
	}{
		{8, 3, 1, 1, 1, 1, false, 8},
		{8, 2, 2, 0, 0, 1, false, 4},
		{7, 2, 2, 0, 0, 1, false, 3},
		{7, 2, 2, 0, 0, 1, true, 4},
		{5, 2, 2, 1, 1, 1, true, 3},   // (5+2-2)/2 ceil = 3, +1 = 4, last starts at 6 >= 5+1: dropped
		{6, 3, 2, 1, 1, 1, true, 4},   // span 5, ceil(5/2)+1 = 4, last starts at 6 < 7: kept
		{10, 3, 1, 0, 0, 2, false, 6}, // extent 5
		{1, 1, 1, 0, 0, 1, false, 1},
	}
	for _, tc := range tests {
		got, err := WindowOut(tc.in, tc.k, tc.s, tc.b, tc.e, tc.d, tc.ceil)
		if err != nil || got != tc.want {
			t.Errorf("WindowOut(%+v) = %d, %v; want %d", tc, got, err, tc.want)
		}
	}
}

func dense(shape []int, data ...float64) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: shape, Data: data}
}

func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

func TestEvalPlainSeed(t *testing.T) {
	p, w := seedPlan()
	y, err := EvalPlain(p, w, dense([]int{2}, 5, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y.Shape, []int{1}) || y.Data[0] != 1022 {
		t.Fatalf("seed model on [5 3] = %v %v, want [1] [1022]", y.Shape, y.Data)
	}
}

func TestEvalPlainOps(t *testing.T) {
	wv := func(name string, shape ...int) Value { return Value{Name: name, Shape: shape} }
	tests := []struct {
		name string
		plan *Plan
		w    Weights
		x    *tensor.Dense[float64]
		want *tensor.Dense[float64]
	}{
		{"matmul batch",
			onePlan([]int{-1, 2}, Node{Op: MatMul, Inputs: []string{"x", "W", "b"}}, wv("W", 2, 3), wv("b", 3)),
			Weights{"W": dense([]int{2, 3}, 1, 2, 3, 4, 5, 6), "b": dense([]int{3}, 10, 20, 30)},
			dense([]int{2, 2}, 1, 0, 1, -1),
			dense([]int{2, 3}, 11, 22, 33, 7, 17, 27)},
		{"conv pad 1",
			onePlan([]int{-1, 1, 2, 2}, Node{Op: Conv, Inputs: []string{"x", "W", "b"}, Attrs: Attrs{Pads: []int{1, 1, 1, 1}}}, wv("W", 1, 1, 3, 3), wv("b", 1)),
			Weights{"W": dense([]int{1, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 1, 1, 1), "b": dense([]int{1}, 0.5)},
			dense([]int{1, 1, 2, 2}, 1, 2, 3, 4),
			dense([]int{1, 1, 2, 2}, 10.5, 10.5, 10.5, 10.5)},
		{"conv stride 2 channels",
			onePlan([]int{-1, 2, 3, 3}, Node{Op: Conv, Inputs: []string{"x", "W"}, Attrs: Attrs{Strides: []int{2, 2}}}, wv("W", 1, 2, 1, 1)),
			Weights{"W": dense([]int{1, 2, 1, 1}, 1, -1)},
			dense([]int{1, 2, 3, 3}, append(seq(9), make([]float64, 9)...)...),
			dense([]int{1, 1, 2, 2}, 1, 3, 7, 9)},
		{"conv dilation",
			onePlan([]int{-1, 1, 3, 3}, Node{Op: Conv, Inputs: []string{"x", "W"}, Attrs: Attrs{Dilations: []int{2, 2}}}, wv("W", 1, 1, 2, 2)),
			Weights{"W": dense([]int{1, 1, 2, 2}, 1, 10, 100, 1000)},
			dense([]int{1, 1, 3, 3}, seq(9)...),
			dense([]int{1, 1, 1, 1}, 1+30+700+9000)},
		{"conv groups",
			onePlan([]int{-1, 2, 1, 1}, Node{Op: Conv, Inputs: []string{"x", "W"}, Attrs: Attrs{Group: 2}}, wv("W", 2, 1, 1, 1)),
			Weights{"W": dense([]int{2, 1, 1, 1}, 3, 5)},
			dense([]int{1, 2, 1, 1}, 2, 7),
			dense([]int{1, 2, 1, 1}, 6, 35)},
		{"add broadcast",
			onePlan([]int{-1, 2, 1, 2}, Node{Op: Add, Inputs: []string{"x", "b"}}, wv("b", 2, 1, 1)),
			Weights{"b": dense([]int{2, 1, 1}, 10, 20)},
			dense([]int{1, 2, 1, 2}, 1, 2, 3, 4),
			dense([]int{1, 2, 1, 2}, 11, 12, 23, 24)},
		{"sub weight first",
			onePlan([]int{-1, 2}, Node{Op: Sub, Inputs: []string{"b", "x"}}, wv("b", 1)),
			Weights{"b": dense([]int{1}, 10)},
			dense([]int{2, 2}, 1, 2, 3, 4),
			dense([]int{2, 2}, 9, 8, 7, 6)},
		{"mul outer",
			onePlan([]int{-1, 1}, Node{Op: Mul, Inputs: []string{"x", "b"}}, wv("b", 3)),
			Weights{"b": dense([]int{3}, 1, 2, 3)},
			dense([]int{2, 1}, 1, 10),
			dense([]int{2, 3}, 1, 2, 3, 10, 20, 30)},
		{"mulconst scalar",
			onePlan([]int{-1, 2}, Node{Op: MulConst, Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{0.5}}}}),
			nil, dense([]int{1, 2}, 4, -6), dense([]int{1, 2}, 2, -3)},
		{"relu",
			onePlan([]int{4}, Node{Op: Relu}), nil,
			dense([]int{4}, -1, 0, 2, -0.5), dense([]int{4}, 0, 0, 2, 0)},
		{"maxpool ignores padding",
			onePlan([]int{-1, 1, 2, 2}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}, Pads: []int{1, 1, 1, 1}, Strides: []int{2, 2}}}), nil,
			dense([]int{1, 1, 2, 2}, -1, -2, -3, -4),
			dense([]int{1, 1, 2, 2}, -1, -2, -3, -4)},
		{"maxpool ceil",
			onePlan([]int{-1, 1, 3, 3}, Node{Op: MaxPool, Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}, CeilMode: true}}), nil,
			dense([]int{1, 1, 3, 3}, seq(9)...),
			dense([]int{1, 1, 2, 2}, 5, 6, 8, 9)},
		{"avgpool exclude pad",
			onePlan([]int{-1, 1, 2, 2}, Node{Op: AveragePool, Attrs: Attrs{Kernel: []int{2, 2}, Pads: []int{1, 1, 1, 1}, Strides: []int{2, 2}}}), nil,
			dense([]int{1, 1, 2, 2}, 4, 8, 12, 16),
			dense([]int{1, 1, 2, 2}, 4, 8, 12, 16)},
		{"avgpool include pad",
			onePlan([]int{-1, 1, 2, 2}, Node{Op: AveragePool, Attrs: Attrs{Kernel: []int{2, 2}, Pads: []int{1, 1, 1, 1}, Strides: []int{2, 2}, CountIncludePad: true}}), nil,
			dense([]int{1, 1, 2, 2}, 4, 8, 12, 16),
			dense([]int{1, 1, 2, 2}, 1, 2, 3, 4)},
		// ceil window past the end padding: PyTorch divides by the part inside input+pads
		{"avgpool ceil include pad",
			onePlan([]int{-1, 1, 1, 3}, Node{Op: AveragePool, Attrs: Attrs{Kernel: []int{1, 2}, Strides: []int{1, 2}, CeilMode: true, CountIncludePad: true}}), nil,
			dense([]int{1, 1, 1, 3}, 2, 4, 6),
			dense([]int{1, 1, 1, 2}, 3, 6)},
		{"gap",
			onePlan([]int{-1, 2, 1, 2}, Node{Op: GlobalAveragePool}), nil,
			dense([]int{1, 2, 1, 2}, 1, 3, 10, 20), dense([]int{1, 2, 1, 1}, 2, 15)},
		{"pad value",
			onePlan([]int{-1, 2}, Node{Op: Pad, Attrs: Attrs{Pads: []int{0, 1, 0, 2}, Value: 9}}), nil,
			dense([]int{2, 2}, 1, 2, 3, 4), dense([]int{2, 5}, 9, 1, 2, 9, 9, 9, 3, 4, 9, 9)},
		{"flatten",
			onePlan([]int{-1, 2, 1, 2}, Node{Op: Flatten, Attrs: Attrs{Axis: 1}}), nil,
			dense([]int{1, 2, 1, 2}, 1, 2, 3, 4), dense([]int{1, 4}, 1, 2, 3, 4)},
		{"reshape",
			onePlan([]int{-1, 4}, Node{Op: Reshape, Attrs: Attrs{Shape: []int{0, 2, -1}}}), nil,
			dense([]int{1, 4}, 1, 2, 3, 4), dense([]int{1, 2, 2}, 1, 2, 3, 4)},
		{"matmul left 1-D",
			onePlan([]int{2}, Node{Op: MatMul, Inputs: []string{"W", "x"}}, wv("W", 2)),
			Weights{"W": dense([]int{2}, 2, 4)}, dense([]int{2}, 5, 3), dense([]int{}, 22)},
		{"matmul left batched",
			onePlan([]int{-1, 2, 1}, Node{Op: MatMul, Inputs: []string{"W", "x", "b"}}, wv("W", 2, 2), wv("b", 1)),
			Weights{"W": dense([]int{2, 2}, 1, 2, 3, 4), "b": dense([]int{1}, 100)},
			dense([]int{2, 2, 1}, 1, 1, 1, -1), dense([]int{2, 2, 1}, 103, 107, 99, 99)},
		{"matmul broadcast batch",
			onePlan([]int{-1, 1, 2}, Node{Op: MatMul, Inputs: []string{"x", "W"}}, wv("W", 2, 2, 1)),
			Weights{"W": dense([]int{2, 2, 1}, 1, 2, 3, 4)},
			dense([]int{1, 1, 2}, 1, 10), dense([]int{2, 1, 1}, 21, 43)},
		{"concat weight",
			onePlan([]int{-1, 1, 2}, Node{Op: Concat, Inputs: []string{"x", "b", "x"}, Attrs: Attrs{Axis: 1}}, wv("b", 1, 1, 2)),
			Weights{"b": dense([]int{1, 1, 2}, 7, 8)},
			dense([]int{1, 1, 2}, 1, 2), dense([]int{1, 3, 2}, 1, 2, 7, 8, 1, 2)},
		{"concat last axis",
			onePlan([]int{-1, 2, 1}, Node{Op: Concat, Inputs: []string{"x", "x"}, Attrs: Attrs{Axis: 2}}),
			nil, dense([]int{1, 2, 1}, 1, 2), dense([]int{1, 2, 2}, 1, 1, 2, 2)},
		{"transpose",
			onePlan([]int{-1, 2, 3}, Node{Op: Transpose, Attrs: Attrs{Perm: []int{0, 2, 1}}}), nil,
			dense([]int{1, 2, 3}, 1, 2, 3, 4, 5, 6), dense([]int{1, 3, 2}, 1, 4, 2, 5, 3, 6)},
		{"slice reversed",
			onePlan([]int{-1, 5}, Node{Op: Slice, Attrs: Attrs{Axes: []int{1}, Starts: []int{4}, Ends: []int{-1}, Steps: []int{-2}}}), nil,
			dense([]int{1, 5}, 1, 2, 3, 4, 5), dense([]int{1, 3}, 5, 3, 1)},
		{"slice",
			onePlan([]int{-1, 2, 4}, Node{Op: Slice, Attrs: Attrs{Axes: []int{2, 1}, Starts: []int{1, 1}, Ends: []int{3, 2}, Steps: []int{1, 1}}}), nil,
			dense([]int{1, 2, 4}, 1, 2, 3, 4, 5, 6, 7, 8), dense([]int{1, 1, 2}, 6, 7)},
		{"gather",
			onePlan([]int{-1, 3, 2}, Node{Op: Gather, Attrs: Attrs{Axis: 1, Indices: []int{2, 0, 2, 1}, IndexShape: []int{2, 2}}}), nil,
			dense([]int{1, 3, 2}, 1, 2, 3, 4, 5, 6), dense([]int{1, 2, 2, 2}, 5, 6, 1, 2, 5, 6, 3, 4)},
		{"gather scalar index",
			onePlan([]int{-1, 3}, Node{Op: Gather, Attrs: Attrs{Axis: 1, Indices: []int{1}, IndexShape: []int{}}}), nil,
			dense([]int{2, 3}, 1, 2, 3, 4, 5, 6), dense([]int{2}, 2, 5)},
		{"reducesum",
			onePlan([]int{-1, 2, 3}, Node{Op: ReduceSum, Attrs: Attrs{Axes: []int{1}}}), nil,
			dense([]int{1, 2, 3}, 1, 2, 3, 4, 5, 6), dense([]int{1, 3}, 5, 7, 9)},
		{"reducesum keepdims",
			onePlan([]int{-1, 2, 3}, Node{Op: ReduceSum, Attrs: Attrs{Axes: []int{2, 0}, KeepDims: true}}), nil,
			dense([]int{1, 2, 3}, 1, 2, 3, 4, 5, 6), dense([]int{1, 2, 1}, 6, 15)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			if w == nil {
				w = Weights{}
			}
			got, err := EvalPlain(tc.plan, w, tc.x)
			if err != nil {
				t.Fatalf("EvalPlain: %v", err)
			}
			if !slices.Equal(got.Shape, tc.want.Shape) {
				t.Fatalf("shape = %v, want %v", got.Shape, tc.want.Shape)
			}
			for i := range got.Data {
				if math.Abs(got.Data[i]-tc.want.Data[i]) > 1e-12 {
					t.Fatalf("data = %v, want %v", got.Data, tc.want.Data)
				}
			}
		})
	}
}

func TestEvalPlainErrors(t *testing.T) {
	p, w := seedPlan()
	tests := []struct {
		name string
		w    Weights
		x    *tensor.Dense[float64]
		want string
	}{
		{"wrong input shape", w, dense([]int{3}, 1, 2, 3), "input shape [3] does not match the plan's input shape [2]"},
		{"bad input data", w, dense([]int{2}, 1), "input shape [2] holds 2 values, got 1"},
		{"missing weight", Weights{"W": w["W"]}, dense([]int{2}, 1, 2), `weight "b" is missing`},
		{"weight shape", Weights{"W": dense([]int{1, 2}, 2, 4), "b": w["b"]}, dense([]int{2}, 1, 2), `weight "W" has shape [1 2], the plan declares [2 1]`},
		{"extra weight", Weights{"W": w["W"], "b": w["b"], "z": dense([]int{1}, 1)}, dense([]int{2}, 1, 2), `weights ["z"] are not declared`},
		{"nan weight", Weights{"W": w["W"], "b": dense([]int{1}, math.Inf(1))}, dense([]int{2}, 1, 2), "non-finite"},
		{"nil input", w, nil, "input is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EvalPlain(p, tc.w, tc.x)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EvalPlain error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	p, _ := seedPlan()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip: got %+v, want %+v", q, p)
	}
	h1, _ := p.Hash()
	h2, _ := q.Hash()
	if h1 != h2 {
		t.Fatal("hash changed in round trip")
	}
	bad := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "decode plan"},
		{"not json", "{", "decode plan"},
		{"unknown field", `{"version":1,"evil":2}`, `unknown field "evil"`},
		{"trailing", string(b) + "{}", "trailing data"},
		{"invalid", `{"version":1,"input":{"name":"x","shape":[2]},"output":"y"}`, `invalid plan: plan output "y" is not defined`},
		{"too big", strings.Repeat(" ", MaxSize+1), "exceeds the limit"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	p, _ := seedPlan()
	b, _ := p.Marshal()
	f.Add(b)
	cnn := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{-1, 1, 8, 8}}, Output: "y",
		Weights: []Value{{Name: "W", Shape: []int{2, 1, 3, 3}}},
		Nodes: []Node{
			{Name: "c", Op: Conv, Inputs: []string{"x", "W"}, Output: "c", Attrs: Attrs{Pads: []int{1, 1, 1, 1}}},
			{Name: "p", Op: MaxPool, Inputs: []string{"c"}, Output: "p", Attrs: Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}},
			{Name: "f", Op: Flatten, Inputs: []string{"p"}, Output: "f", Attrs: Attrs{Axis: 1}},
			{Name: "m", Op: MulConst, Inputs: []string{"f"}, Output: "y", Attrs: Attrs{Const: &Const{Shape: []int{}, Data: []float64{2}}}},
		}}
	b, _ = cnn.Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1,"input":{"name":"x","shape":[-1,2]},"output":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		// a valid plan re-encodes to a valid plan, and shape inference
		// never panics on it
		b2, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(b2); err != nil {
			t.Fatalf("re-decoding a valid plan: %v", err)
		}
		_, _ = p.Shapes(1)
		_, _ = p.Shapes(3)
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
