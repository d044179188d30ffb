package onnx

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// importCase is a hand-built graph with the plan it must import to (input
// shape, ops) and one input and output of its plaintext twin.
type importCase struct {
	name    string
	model   *gb
	inShape []int
	ops     []plan.Op
	x, want *tensor.Dense[float64]
}

func runImportCases(t *testing.T, cases []importCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, w, err := ImportBytes(tc.model.bytes(t))
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if !slices.Equal(p.Input.Shape, tc.inShape) {
				t.Errorf("input shape %v, want %v", p.Input.Shape, tc.inShape)
			}
			var ops []plan.Op
			for _, n := range p.Nodes {
				ops = append(ops, n.Op)
			}
			if !slices.Equal(ops, tc.ops) {
				t.Errorf("ops %v, want %v", ops, tc.ops)
			}
			y, err := plan.EvalPlain(p, w, tc.x)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !slices.Equal(y.Shape, tc.want.Shape) {
				t.Fatalf("output shape %v, want %v", y.Shape, tc.want.Shape)
			}
			for i := range y.Data {
				if math.Abs(y.Data[i]-tc.want.Data[i]) > 1e-6 {
					t.Fatalf("output %v, want %v", y.Data, tc.want.Data)
				}
			}
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plan.Unmarshal(b); err != nil {
				t.Fatalf("plan does not round-trip: %v", err)
			}
		})
	}
}

// errorCase is a graph the importer must refuse with an error holding want.
type errorCase struct {
	name  string
	model *gb
	want  string
}

func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, w, err := ImportBytes(tc.model.bytes(t))
			if err == nil || p != nil || w != nil {
				t.Fatalf("import: %v (plan %v), want an error containing %q", err, p != nil, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestImportMoves(t *testing.T) {
	seq := func(n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(i + 1)
		}
		return s
	}
	runImportCases(t, []importCase{
		{
			name: "concat activations and a constant",
			model: newGraph(13, 1, 1, 2).init(floatT("c", []int{1, 1, 2}, 7, 8)).
				node("Relu", "r", []string{"x"}, []string{"r"}).
				node("Concat", "cat", []string{"x", "c", "r"}, []string{"y"}, aInt("axis", -2)),
			inShape: []int{1, 1, 2}, ops: []plan.Op{plan.Relu, plan.Concat},
			x: dense([]int{1, 1, 2}, -1, 2), want: dense([]int{1, 3, 2}, -1, 2, 7, 8, 0, 2),
		},
		{
			name:    "transpose default perm",
			model:   newGraph(13, 2, 3).node("Transpose", "t", []string{"x"}, []string{"y"}),
			inShape: []int{2, 3}, ops: []plan.Op{plan.Transpose},
			x: dense([]int{2, 3}, seq(6)...), want: dense([]int{3, 2}, 1, 4, 2, 5, 3, 6),
		},
		{
			name: "slice inputs, negative step, whole batch",
			model: newGraph(13, "N", 5).init(intsT("s", 0, -1)).init(intsT("e", 1<<62, -9)).init(intsT("a", 0, 1)).init(intsT("st", 1, -2)).
				node("Slice", "s", []string{"x", "s", "e", "a", "st"}, []string{"y"}),
			inShape: []int{-1, 5}, ops: []plan.Op{plan.Slice},
			x: dense([]int{1, 5}, seq(5)...), want: dense([]int{1, 3}, 5, 3, 1),
		},
		{
			name: "slice attributes (opset 9)",
			model: newGraph(9, "N", 4).node("Slice", "s", []string{"x"}, []string{"y"},
				aInts("starts", 1), aInts("ends", 3), aInts("axes", 1)),
			inShape: []int{-1, 4}, ops: []plan.Op{plan.Slice},
			x: dense([]int{1, 4}, seq(4)...), want: dense([]int{1, 2}, 2, 3),
		},
		{
			name: "split equal (opset 13, two outputs)",
			model: newGraph(13, "N", 4).node("Split", "sp", []string{"x"}, []string{"a", "b"}, aInt("axis", 1)).
				node("Sub", "d", []string{"a", "b"}, []string{"y"}),
			inShape: []int{-1, 4}, ops: []plan.Op{plan.Slice, plan.Slice, plan.Sub},
			x: dense([]int{1, 4}, 1, 2, 10, 20), want: dense([]int{1, 2}, -9, -18),
		},
		{
			name:    "split sizes input",
			model:   newGraph(13, "N", 3).init(intsT("sz", 1, 2)).node("Split", "sp", []string{"x", "sz"}, []string{"y", ""}, aInt("axis", -1)),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.Slice},
			x: dense([]int{1, 3}, 1, 2, 3), want: dense([]int{1, 1}, 1),
		},
		{
			name:    "gather constant indices",
			model:   newGraph(13, "N", 3).init(intsT("i", 2, -3)).node("Gather", "g", []string{"x", "i"}, []string{"y"}, aInt("axis", 1)),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.Gather},
			x: dense([]int{1, 3}, 1, 2, 3), want: dense([]int{1, 2}, 3, 1),
		},
		{
			name:    "reducemean attribute axes, no keepdims",
			model:   newGraph(13, "N", 2, 1, 2).node("ReduceMean", "m", []string{"x"}, []string{"y"}, aInts("axes", 2, 3), aInt("keepdims", 0)),
			inShape: []int{-1, 2, 1, 2}, ops: []plan.Op{plan.ReduceSum, plan.MulConst},
			x: dense([]int{1, 2, 1, 2}, 1, 3, 10, 20), want: dense([]int{1, 2}, 2, 15),
		},
		{
			name:    "reducemean keepdims",
			model:   newGraph(13, "N", 2, 1, 2).node("ReduceMean", "m", []string{"x"}, []string{"y"}, aInts("axes", -1, 1)),
			inShape: []int{-1, 2, 1, 2}, ops: []plan.Op{plan.ReduceSum, plan.MulConst},
			x: dense([]int{1, 2, 1, 2}, 1, 3, 10, 20), want: dense([]int{1, 1, 1, 1}, 8.5),
		},
		{
			name:    "reducesum axes input (opset 13)",
			model:   newGraph(13, "N", 2, 2).init(intsT("ax", 1)).node("ReduceSum", "s", []string{"x", "ax"}, []string{"y"}, aInt("keepdims", 0)),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.ReduceSum},
			x: dense([]int{1, 2, 2}, 1, 2, 3, 4), want: dense([]int{1, 2}, 4, 6),
		},
		{
			// shufflenet's channel shuffle with the shape computed from x.size()
			name: "channel shuffle",
			model: newGraph(13, "N", 4, 1, 1).init(intsT("s5", 0, 2, 2, 1, 1)).init(intsT("s4", 0, 4, 1, 1)).
				node("Reshape", "r1", []string{"x", "s5"}, []string{"a"}).
				node("Transpose", "t", []string{"a"}, []string{"b"}, aInts("perm", 0, 2, 1, 3, 4)).
				node("Reshape", "r2", []string{"b", "s4"}, []string{"y"}),
			inShape: []int{-1, 4, 1, 1}, ops: []plan.Op{plan.Reshape, plan.Transpose, plan.Reshape},
			x: dense([]int{1, 4, 1, 1}, 1, 2, 3, 4), want: dense([]int{1, 4, 1, 1}, 1, 3, 2, 4),
		},
	})
	runErrorCases(t, []errorCase{
		{"slice batch", newGraph(13, "N", 2).init(intsT("s", 0)).init(intsT("e", 1)).init(intsT("a", 0)).
			node("Slice", "s", []string{"x", "s", "e", "a"}, []string{"y"}), "node s (Slice): slicing the batch dimension (axis 0)"},
		{"slice empty", newGraph(13, "N", 2).init(intsT("s", 1)).init(intsT("e", 1)).init(intsT("a", 1)).
			node("Slice", "s", []string{"x", "s", "e", "a"}, []string{"y"}), "slice of axis 1 is empty"},
		{"gather batch", newGraph(13, "N", 2).init(intsT("i", 0)).node("Gather", "g", []string{"x", "i"}, []string{"y"}),
			"node g (Gather): gathering along the batch dimension"},
		{"gather activation indices", newGraph(13, "N", 2).node("Gather", "g", []string{"x", "x"}, []string{"y"}, aInt("axis", 1)),
			"indices (input \"x\") must be a constant"},
		{"reduce batch", newGraph(13, "N", 2).node("ReduceMean", "m", []string{"x"}, []string{"y"}),
			"node m (ReduceMean): reducing over the batch dimension"},
		{"split sizes", newGraph(13, "N", 3).init(intsT("sz", 1, 1)).node("Split", "sp", []string{"x", "sz"}, []string{"y", "z"}, aInt("axis", 1)),
			"split sizes [1 1] do not add up to dimension 3"},
	})
}

// TestImportGemmTransposedData: Gemm's transA on the data (x [k, m]ᵀ·B)
// and transB on the data with the constant on the left (W·xᵀ) emit a
// Transpose of the activation.
func TestImportGemmTransposedData(t *testing.T) {
	runImportCases(t, []importCase{
		{
			name: "transA on the data",
			model: newGraph(13, 2, 3).init(floatT("B", []int{2, 1}, 1, 10)).
				node("Gemm", "g", []string{"x", "B"}, []string{"y"}, aInt("transA", 1)),
			inShape: []int{2, 3}, ops: []plan.Op{plan.Transpose, plan.MatMul},
			x: dense([]int{2, 3}, 1, 2, 3, 4, 5, 6), want: dense([]int{3, 1}, 41, 52, 63),
		},
		{
			name: "transB on the data, constant A",
			model: newGraph(13, 3, 2).init(floatT("A", []int{1, 2}, 1, 10)).init(floatT("C", []int{1, 3}, 0, 0, 100)).
				node("Gemm", "g", []string{"A", "x", "C"}, []string{"y"}, aInt("transB", 1)),
			inShape: []int{3, 2}, ops: []plan.Op{plan.Transpose, plan.MatMul},
			x: dense([]int{3, 2}, 1, 2, 3, 4, 5, 6), want: dense([]int{1, 3}, 21, 43, 165),
		},
	})
}
