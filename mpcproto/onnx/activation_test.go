package onnx

import (
	"math"
	"slices"
	"testing"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
)

func TestImportActivations(t *testing.T) {
	fmax := floatT("big", []int{}, math.MaxFloat32)
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	runImportCases(t, []importCase{
		{
			name:    "relu6 (clip inputs)",
			model:   newGraph(13, "N", 3).init(floatT("lo", []int{}, 0)).init(floatT("hi", []int{}, 6)).node("Clip", "c", []string{"x", "lo", "hi"}, []string{"y"}),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.Clip},
			x: dense([]int{1, 3}, -1, 2, 7), want: dense([]int{1, 3}, 0, 2, 6),
		},
		{
			name:    "clamp(min) (max absent)",
			model:   newGraph(13, "N", 2).init(floatT("lo", []int{}, -0.5)).node("Clip", "c", []string{"x", "lo"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Clip},
			x: dense([]int{1, 2}, -1, 2), want: dense([]int{1, 2}, -0.5, 2),
		},
		{
			name:    "clip attributes, FLT_MAX for none (opset 9)",
			model:   newGraph(9, "N", 2).node("Clip", "c", []string{"x"}, []string{"y"}, aFloat("min", -math.MaxFloat32), aFloat("max", 1)),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Clip},
			x: dense([]int{1, 2}, -100, 2), want: dense([]int{1, 2}, -100, 1),
		},
		{
			name:    "clip without bounds",
			model:   newGraph(13, "N", 2).init(fmax).node("Clip", "c", []string{"x", "", "big"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Identity},
			x: dense([]int{1, 2}, -100, 2), want: dense([]int{1, 2}, -100, 2),
		},
		{
			name:    "leaky relu",
			model:   newGraph(13, "N", 2).node("LeakyRelu", "l", []string{"x"}, []string{"y"}, aFloat("alpha", 0.25)),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.LeakyRelu},
			x: dense([]int{1, 2}, -4, 2), want: dense([]int{1, 2}, -1, 2),
		},
		{
			name:    "prelu per channel",
			model:   newGraph(13, "N", 2, 1).init(floatT("s", []int{2, 1}, 0.5, -1)).node("PRelu", "p", []string{"x", "s"}, []string{"y"}),
			inShape: []int{-1, 2, 1}, ops: []plan.Op{plan.PRelu},
			x: dense([]int{1, 2, 1}, -4, -2), want: dense([]int{1, 2, 1}, -2, 2),
		},
		{
			name:    "hard sigmoid",
			model:   newGraph(13, "N", 3).node("HardSigmoid", "h", []string{"x"}, []string{"y"}, aFloat("alpha", 0.25)),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.HardSigmoid},
			x: dense([]int{1, 3}, -4, 1, 4), want: dense([]int{1, 3}, 0, 0.75, 1),
		},
		{
			name:    "hard swish",
			model:   newGraph(14, "N", 3).node("HardSwish", "h", []string{"x"}, []string{"y"}),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.HardSwish},
			x: dense([]int{1, 3}, -4, 1, 4), want: dense([]int{1, 3}, 0, 1*(1.0/6+0.5), 4),
		},
		{
			name: "silu (x times its sigmoid)",
			model: newGraph(13, "N", 2).node("Sigmoid", "s", []string{"x"}, []string{"s"}).
				node("Mul", "m", []string{"s", "x"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.SiLU},
			x: dense([]int{1, 2}, -1, 2), want: dense([]int{1, 2}, -sig(-1), 2*sig(2)),
		},
		{
			name: "sigmoid gate (squeeze-and-excitation)",
			model: newGraph(13, "N", 2, 2).init(intsT("ax", 2)).node("ReduceMean", "r", []string{"x"}, []string{"a"}, aInts("axes", 2), aInt("keepdims", 0)).
				node("Sigmoid", "s", []string{"a"}, []string{"s"}).
				node("Unsqueeze", "u", []string{"s", "ax"}, []string{"g"}).
				node("Mul", "m", []string{"x", "g"}, []string{"y"}),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.ReduceSum, plan.MulConst, plan.Sigmoid, plan.Reshape, plan.Mul},
			x:    dense([]int{1, 2, 2}, 1, 3, -2, 0),
			want: dense([]int{1, 2, 2}, sig(2), 3*sig(2), -2*sig(-1), 0),
		},
		{
			name: "conv 1-D same padding, strided, grouped",
			model: newGraph(13, "N", 2, 5).init(floatT("W", []int{2, 1, 3}, 1, 1, 1, 0, 1, 0)).init(floatT("b", []int{2}, 0, 10)).
				node("Conv", "c", []string{"x", "W", "b"}, []string{"y"}, aInt("group", 2), aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2)),
			inShape: []int{-1, 2, 5}, ops: []plan.Op{plan.Reshape, plan.Conv, plan.Reshape},
			x: dense([]int{1, 2, 5}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), want: dense([]int{1, 2, 3}, 3, 9, 9, 16, 18, 20),
		},
	})
	g := func(op string, attrs ...*pb.AttributeProto) *gb {
		return newGraph(13, "N", 2).node(op, "n", []string{"x"}, []string{"y"}, attrs...)
	}
	runErrorCases(t, []errorCase{
		{"clip min above max", newGraph(13, "N", 2).init(floatT("lo", []int{}, 2)).init(floatT("hi", []int{}, 1)).
			node("Clip", "c", []string{"x", "lo", "hi"}, []string{"y"}), "node c (Clip): min 2 is not below max 1"},
		{"clip activation bound", newGraph(13, "N", 2).node("Clip", "c", []string{"x", "x"}, []string{"y"}), `min (input "x") must be a constant`},
		{"prelu activation slope", newGraph(13, "N", 2).node("PRelu", "p", []string{"x", "x"}, []string{"y"}), `slope (input "x") must be a constant`},
		{"sigmoid attribute", g("Sigmoid", aInt("foo", 1)), "node n (Sigmoid): attribute foo is not supported"},
		{"leaky relu attribute", g("LeakyRelu", aInt("beta", 1)), "node n (LeakyRelu): attribute beta is not supported"},
		{"softmax not last", newGraph(13, "N", 2).node("Softmax", "s", []string{"x"}, []string{"a"}).node("Relu", "r", []string{"a"}, []string{"y"}),
			"unsupported op Softmax (node s): only as the model's last op"},
		{"softmax read twice", newGraph(13, "N", 2).node("Softmax", "s", []string{"x"}, []string{"y"}).node("Relu", "r", []string{"y"}, []string{"z"}),
			"unsupported op Softmax (node s)"},
		{"softmax over the batch", newGraph(13, "N", 2).node("Softmax", "s", []string{"x"}, []string{"y"}, aInt("axis", 0)),
			"node s (Softmax): Softmax over the batch dimension (axis 0) is not supported"},
		{"softmax attribute", newGraph(13, "N", 2).node("Softmax", "s", []string{"x"}, []string{"y"}, aInt("foo", 0)),
			"node s (Softmax): attribute foo is not supported"},
	})
}

// TestImportFinalSoftmax: a last Softmax (LogSoftmax) becomes the plan's
// client-side final op: the holders compute the logits, the twin and the
// client apply it (opset 13: one axis; before: the axes from axis on).
func TestImportFinalSoftmax(t *testing.T) {
	fc := func(opset int64, op string, attrs ...*pb.AttributeProto) *gb {
		return newGraph(opset, "N", 2, 2).init(floatT("W", []int{2, 2}, 1, 0, 0, 2)).
			node("MatMul", "mm", []string{"x", "W"}, []string{"z"}).
			node(op, "sm", []string{"z"}, []string{"y"}, attrs...)
	}
	e := math.Exp
	runImportCases(t, []importCase{
		{
			name: "softmax (opset 13, last axis)", model: fc(13, "Softmax"),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.MatMul},
			x:    dense([]int{1, 2, 2}, 1, 1, 0, 1),
			want: dense([]int{1, 2, 2}, e(1)/(e(1)+e(2)), e(2)/(e(1)+e(2)), 1/(1+e(2)), e(2)/(1+e(2))),
		},
		{
			name: "log softmax over axes 1 and 2 (opset 11)", model: fc(11, "LogSoftmax"),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.MatMul},
			x: dense([]int{1, 2, 2}, 0, 0, 0, 0), want: dense([]int{1, 2, 2}, -math.Log(4), -math.Log(4), -math.Log(4), -math.Log(4)),
		},
	})
	p, w, err := ImportBytes(fc(13, "Softmax").bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Final == nil || p.Final.Op != plan.FinalSoftmax || !slices.Equal(p.Final.Axes, []int{2}) {
		t.Fatalf("final op %+v, want Softmax over axis 2", p.Final)
	}
	if ops, approx := p.Summary(); ops != 2 || !slices.Equal(approx, []string{"Softmax (client)"}) {
		t.Fatalf("summary %d %q", ops, approx)
	}
	x := dense([]int{2, 2, 2}, 1, 1, 0, 1, -1, 2, 3, 0.5)
	want, err := plan.EvalPlain(p, w, x)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := engine.RunLocal(t.Context(), p, w, x, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.Data {
		if math.Abs(got.Data[i]-want.Data[i]) > 1e-4 {
			t.Fatalf("secure %v, twin %v", got.Data, want.Data)
		}
	}
}
