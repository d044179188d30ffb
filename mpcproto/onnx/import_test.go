package onnx

import (
	"bytes"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

func dense(shape []int, data ...float64) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: shape, Data: data}
}

// TestImportOps imports small hand-built graphs and checks the plan's
// input shape, its ops and its plaintext values.
func TestImportOps(t *testing.T) {
	tests := []struct {
		name    string
		model   *gb
		inShape []int     // the plan's input shape
		ops     []plan.Op // the plan's ops, in order
		x       *tensor.Dense[float64]
		want    *tensor.Dense[float64]
	}{
		{
			// y = 2 * x·Bᵀ + 0.5 * C with B [3, 2], C [1, 3]
			name: "gemm alpha beta transB",
			model: newGraph(13, "N", 2).
				init(floatT("B", []int{3, 2}, 1, 2, 3, 4, 5, 6)).init(floatT("C", []int{1, 3}, 10, 20, 30)).
				node("Gemm", "/fc/Gemm", []string{"x", "B", "C"}, []string{"y"}, aFloat("alpha", 2), aFloat("beta", 0.5), aInt("transB", 1)),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.MatMul},
			x:    dense([]int{2, 2}, 1, 0, 1, 1),
			want: dense([]int{2, 3}, 2+5, 6+10, 10+15, 6+5, 14+10, 22+15),
		},
		{
			name: "gemm scalar bias",
			model: newGraph(11, 1, 2).
				init(floatT("B", []int{2, 1}, 1, 1)).init(floatT("C", []int{}, 7)).
				node("Gemm", "g", []string{"x", "B", "C"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.MatMul},
			x: dense([]int{1, 2}, 1, 2), want: dense([]int{1, 1}, 10),
		},
		{
			// x @ w with a 1-D w, then + b folded into the bias
			name: "matmul 1-D weight",
			model: newGraph(13, "N", 3).
				init(floatT("w", []int{3}, 1, 10, 100)).init(floatT("b", []int{1}, 0.5)).
				node("MatMul", "mm", []string{"x", "w"}, []string{"m"}).
				node("Add", "add", []string{"m", "b"}, []string{"y"}),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.MatMul, plan.Reshape, plan.Add},
			x: dense([]int{2, 3}, 1, 2, 3, 4, 5, 6), want: dense([]int{2}, 321.5, 654.5),
		},
		{
			// torch's x @ W.T + b with a 1-D x: the Add folds into the MatMul's bias
			name: "matmul 1-D input bias folded",
			model: newGraph(13, 2).
				init(floatT("W", []int{2, 1}, 2, 4)).init(floatT("b", []int{1}, 1000)).
				node("MatMul", "mm", []string{"x", "W"}, []string{"m"}).
				node("Add", "add", []string{"b", "m"}, []string{"y"}),
			inShape: []int{2}, ops: []plan.Op{plan.MatMul},
			x: dense([]int{2}, 5, 3), want: dense([]int{1}, 1022),
		},
		{
			// a dot product of two vectors: a scalar
			name: "matmul 1-D by 1-D",
			model: newGraph(13, 3).
				init(floatT("w", []int{3}, 1, 2, 3)).
				node("MatMul", "mm", []string{"x", "w"}, []string{"y"}),
			inShape: []int{3}, ops: []plan.Op{plan.MatMul, plan.Reshape},
			x: dense([]int{3}, 1, 1, 2), want: dense([]int{}, 9),
		},
		{
			// y = 10 - x / 4 - 1: Div -> MulConst, const-first Sub -> Sub,
			// Sub of a constant -> Add of its negation
			name: "div and subs",
			model: newGraph(13, "N", 2).
				constant("four", floatT("", []int{}, 4)).constant("ten", floatT("", []int{1}, 10)).
				init(floatT("one", []int{2}, 1, 2)).
				node("Div", "div", []string{"x", "four"}, []string{"d"}).
				node("Sub", "sub", []string{"ten", "d"}, []string{"s"}).
				node("Sub", "sub2", []string{"s", "one"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.MulConst, plan.Sub, plan.Add},
			x: dense([]int{1, 2}, 8, 4), want: dense([]int{1, 2}, 10-2-1, 10-1-2),
		},
		{
			name: "activations combined",
			model: newGraph(13, "N", 2).
				node("Relu", "r", []string{"x"}, []string{"r"}).
				node("Add", "a", []string{"x", "r"}, []string{"a"}).
				node("Mul", "m", []string{"a", "x"}, []string{"m"}).
				node("Sub", "s", []string{"m", "r"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Relu, plan.Add, plan.Mul, plan.Sub},
			x: dense([]int{1, 2}, -3, 2), want: dense([]int{1, 2}, -3*-3, 4*2-2),
		},
		{
			// opset 11 Pad with inputs, value 1, then AveragePool counting pads
			name: "pad inputs and avgpool include pad",
			model: newGraph(11, "N", 1, 2, 2).
				init(intsT("pads", 0, 0, 1, 0, 0, 0, 0, 1)).init(floatT("v", []int{}, 1)).
				node("Pad", "pad", []string{"x", "pads", "v"}, []string{"p"}).
				node("AveragePool", "avg", []string{"p"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 1, 1), aInts("strides", 2, 2), aInt("count_include_pad", 1)),
			inShape: []int{-1, 1, 2, 2}, ops: []plan.Op{plan.Pad, plan.AveragePool},
			// padded: [[1 1 1][4 8 1][12 16 1]]; windows over the zero-padded border
			x: dense([]int{1, 1, 2, 2}, 4, 8, 12, 16), want: dense([]int{1, 1, 2, 2}, 0.25, 0.5, 4, 6.5),
		},
		{
			name: "pad attrs opset 9 and avgpool exclude pad ceil",
			model: newGraph(9, "N", 1, 1, 3).
				node("Pad", "pad", []string{"x"}, []string{"p"}, aInts("pads", 0, 0, 0, 0, 0, 0, 0, 1), aFloat("value", 2)).
				node("AveragePool", "avg", []string{"p"}, []string{"y"}, aInts("kernel_shape", 1, 3), aInts("strides", 1, 3), aInt("ceil_mode", 0)),
			inShape: []int{-1, 1, 1, 3}, ops: []plan.Op{plan.Pad, plan.AveragePool},
			x: dense([]int{1, 1, 1, 3}, 3, 6, 9), want: dense([]int{1, 1, 1, 1}, 6),
		},
		{
			name: "pad opset 18 axes",
			model: newGraph(18, "N", 2).
				init(intsT("pads", 1, 2)).init(intsT("axes", -1)).
				node("Pad", "pad", []string{"x", "pads", "", "axes"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Pad},
			x: dense([]int{1, 2}, 5, 6), want: dense([]int{1, 5}, 0, 5, 6, 0, 0),
		},
		{
			name: "maxpool dilations and same padding conv",
			model: newGraph(13, "N", 1, 4, 4).
				init(floatT("W", []int{1, 1, 1, 1}, 2)).
				node("Conv", "conv", []string{"x", "W"}, []string{"c"}, aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2, 2)).
				node("MaxPool", "mp", []string{"c"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("dilations", 1, 1)),
			inShape: []int{-1, 1, 4, 4}, ops: []plan.Op{plan.Conv, plan.MaxPool},
			x:    dense([]int{1, 1, 4, 4}, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
			want: dense([]int{1, 1, 1, 1}, 22),
		},
		{
			// x.view(x.size(0), -1) as torch exports it
			name: "shape gather unsqueeze concat reshape",
			model: newGraph(13, "batch", 2, 2).
				node("Shape", "/Shape", []string{"x"}, []string{"s"}).
				constant("zero", &pb.TensorProto{DataType: dtInt64, Int64Data: []int64{0}}).
				node("Gather", "/Gather", []string{"s", "zero"}, []string{"g"}, aInt("axis", 0)).
				constant("ax", intsT("", 0)).
				node("Unsqueeze", "/Unsqueeze", []string{"g", "ax"}, []string{"u"}).
				constant("m1", intsT("", -1)).
				node("Concat", "/Concat", []string{"u", "m1"}, []string{"shape"}, aInt("axis", 0)).
				node("Reshape", "/Reshape", []string{"x", "shape"}, []string{"y"}),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.Reshape},
			x: dense([]int{2, 2, 2}, 1, 2, 3, 4, 5, 6, 7, 8), want: dense([]int{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8),
		},
		{
			// a batch fixed to 1 at export is freed; the Reshape's literal 1 follows it
			name: "batch fixed to one",
			model: newGraph(13, 1, 2, 2).
				init(intsT("shape", 1, -1)).
				node("Reshape", "r", []string{"x", "shape"}, []string{"y"}),
			inShape: []int{-1, 2, 2}, ops: []plan.Op{plan.Reshape},
			x: dense([]int{2, 2, 2}, 1, 2, 3, 4, 5, 6, 7, 8), want: dense([]int{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8),
		},
		{
			// Flatten(axis 0) merges the batch: a model exported with batch 1
			// keeps batch 1
			name: "batch fixed to one kept",
			model: newGraph(13, 1, 3).
				node("Flatten", "f", []string{"x"}, []string{"y"}, aInt("axis", 0)),
			inShape: []int{1, 3}, ops: []plan.Op{plan.Flatten},
			x: dense([]int{1, 3}, 1, 2, 3), want: dense([]int{1, 3}, 1, 2, 3),
		},
		{
			name: "unsqueeze squeeze on activations",
			model: newGraph(13, "N", 3).
				init(intsT("axes", 1, 3)).init(intsT("axes2", 3)).
				node("Unsqueeze", "u", []string{"x", "axes"}, []string{"u"}).
				node("Squeeze", "s", []string{"u", "axes2"}, []string{"y"}),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.Reshape, plan.Reshape},
			x: dense([]int{2, 3}, 1, 2, 3, 4, 5, 6), want: dense([]int{2, 1, 3}, 1, 2, 3, 4, 5, 6),
		},
		{
			name: "unsqueeze attrs opset 11",
			model: newGraph(11, "N", 3).
				node("Unsqueeze", "u", []string{"x"}, []string{"y"}, aInts("axes", -1)),
			inShape: []int{-1, 3}, ops: []plan.Op{plan.Reshape},
			x: dense([]int{1, 3}, 1, 2, 3), want: dense([]int{1, 3, 1}, 1, 2, 3),
		},
		{
			// BN after a Relu cannot fold: x*s (public) + t (secret)
			name: "standalone batchnorm rank 2",
			model: newGraph(9, "N", 2).
				init(floatT("g", []int{2}, 2, 1)).init(floatT("b", []int{2}, 1, 0)).
				init(floatT("mean", []int{2}, 1, 2)).init(floatT("var", []int{2}, 4, 1)).
				node("Relu", "r", []string{"x"}, []string{"r"}).
				node("BatchNormalization", "bn", []string{"r", "g", "b", "mean", "var"}, []string{"y"}, aFloat("epsilon", 0)),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Relu, plan.MulConst, plan.Add},
			x: dense([]int{1, 2}, 3, 5), want: dense([]int{1, 2}, (3-1)/2.0*2+1, 5-2),
		},
		{
			// BN folds into the Conv (no bias) and into the Gemm
			name: "batchnorm folded",
			model: newGraph(13, "N", 1, 1, 1).
				init(floatT("W", []int{2, 1, 1, 1}, 1, 2)).
				init(floatT("g", []int{2}, 2, 1)).init(floatT("b", []int{2}, 1, 0)).
				init(floatT("mean", []int{2}, 1, 2)).init(floatT("var", []int{2}, 4, 1)).
				init(floatT("fw", []int{2, 2}, 1, 0, 0, 1)).init(floatT("fb", []int{2}, 0, 0)).
				init(floatT("g2", []int{2}, 1, 1)).init(floatT("b2", []int{2}, 0, 0)).
				init(floatT("mean2", []int{2}, 0, 10)).init(floatT("var2", []int{2}, 1, 1)).
				node("Conv", "conv", []string{"x", "W"}, []string{"c"}).
				node("BatchNormalization", "bn", []string{"c", "g", "b", "mean", "var"}, []string{"n"}, aFloat("epsilon", 0)).
				node("Flatten", "f", []string{"n"}, []string{"f"}).
				node("Gemm", "fc", []string{"f", "fw", "fb"}, []string{"l"}).
				node("BatchNormalization", "bn2", []string{"l", "g2", "b2", "mean2", "var2"}, []string{"y"}, aFloat("epsilon", 0)),
			inShape: []int{-1, 1, 1, 1}, ops: []plan.Op{plan.Conv, plan.Flatten, plan.MatMul},
			x: dense([]int{1, 1, 1, 1}, 3), want: dense([]int{1, 2}, (3-1)/2.0*2+1, 6-2-10),
		},
		{
			name: "dropout identity cast",
			model: newGraph(13, "N", 2).
				init(floatT("ratio", []int{}, 0.5)).init(&pb.TensorProto{Name: "train", DataType: dtBool, Int32Data: []int32{0}}).
				node("Dropout", "d", []string{"x", "ratio", "train"}, []string{"d", "mask"}).
				node("Identity", "i", []string{"d"}, []string{"i"}).
				node("Cast", "c", []string{"i"}, []string{"c"}, aInt("to", dtFloat)).
				node("Relu", "r", []string{"c"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Relu},
			x: dense([]int{1, 2}, -1, 1), want: dense([]int{1, 2}, 0, 1),
		},
		{
			// constant subgraph: Transpose, Slice, Cast, ConstantOfShape,
			// Concat, Neg and Mul fold into one MulConst factor
			name: "constant folding",
			model: newGraph(13, "N", 2).
				init(floatT("m", []int{2, 2}, 1, 2, 3, 4)).
				node("Transpose", "t", []string{"m"}, []string{"mt"}).
				init(intsT("st", 1)).init(intsT("en", 9223372036854775807)).init(intsT("ax", 0)).
				node("Slice", "s", []string{"mt", "st", "en", "ax"}, []string{"row"}). // [[2 4]]
				init(intsT("one2", 1, 2)).
				node("ConstantOfShape", "cs", []string{"one2"}, []string{"ones"}, &pb.AttributeProto{Name: "value", Type: pb.AttributeProto_TENSOR, T: floatT("", []int{1}, -1)}).
				node("Neg", "n", []string{"ones"}, []string{"pos"}).
				node("Mul", "mm", []string{"row", "pos"}, []string{"f"}).
				node("Cast", "c", []string{"f"}, []string{"fc"}, aInt("to", dtDouble)).
				node("Mul", "y", []string{"x", "fc"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.MulConst},
			x: dense([]int{1, 2}, 1, 1), want: dense([]int{1, 2}, 2, 4),
		},
		{
			name:    "identity model",
			model:   newGraph(13, "N", 2).node("Identity", "i", []string{"x"}, []string{"y"}),
			inShape: []int{-1, 2}, ops: []plan.Op{plan.Identity},
			x: dense([]int{1, 2}, 1, 2), want: dense([]int{1, 2}, 1, 2),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, w, err := ImportBytes(tc.model.bytes(t))
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if !reflect.DeepEqual(p.Input.Shape, tc.inShape) {
				t.Errorf("input shape %v, want %v", p.Input.Shape, tc.inShape)
			}
			var ops []plan.Op
			for _, n := range p.Nodes {
				ops = append(ops, n.Op)
			}
			if !reflect.DeepEqual(ops, tc.ops) {
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
			// the plan survives its wire form
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

func TestImportErrors(t *testing.T) {
	relu := func(g *gb) *gb { return g.node("Relu", "r", []string{"x"}, []string{"y"}) }
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want string
	}{
		{"unsupported op", func(t *testing.T) []byte {
			return newGraph(13, "N", 10).node("Softmax", "/Softmax_3", []string{"x"}, []string{"s"}).
				node("Relu", "r", []string{"s"}, []string{"y"}).bytes(t)
		}, "unsupported op Softmax (node /Softmax_3)"},
		{"unsupported op unnamed", func(t *testing.T) []byte {
			return relu(newGraph(13, "N", 10)).node("Tanh", "", []string{"y"}, []string{"z"}).bytes(t)
		}, "unsupported op Tanh (node Tanh_1)"},
		{"other domain", func(t *testing.T) []byte {
			b := newGraph(13, "N", 2)
			b.g.Node = append(b.g.Node, &pb.NodeProto{OpType: "Relu", Name: "r", Domain: "com.microsoft", Input: []string{"x"}, Output: []string{"y"}})
			return b.bytes(t)
		}, "unsupported op Relu of domain com.microsoft (node r)"},
		{"malformed", func(t *testing.T) []byte { return []byte("this is not an onnx file") }, "decode onnx model"},
		{"empty", func(t *testing.T) []byte { return nil }, "onnx model has no graph"},
		{"truncated", func(t *testing.T) []byte {
			b, err := os.ReadFile(testdata("digits_mlp.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			return b[:len(b)/2]
		}, "decode onnx model"},
		{"missing initializer", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).node("MatMul", "/fc/MatMul", []string{"x", "fc.weight"}, []string{"y"}).bytes(t)
		}, `node /fc/MatMul (MatMul): input "fc.weight" is not defined`},
		{"dynamic feature dim", func(t *testing.T) []byte { return relu(newGraph(13, "N", "F")).bytes(t) }, "dimension 1 is dynamic"},
		{"dynamic 1-D input", func(t *testing.T) []byte { return relu(newGraph(13, "N")).bytes(t) }, "dimension 0 is dynamic"},
		{"no opset", func(t *testing.T) []byte {
			b := relu(newGraph(13, "N", 2))
			b.opset = 0
			return b.bytes(t)
		}, "onnx model imports no opset of the default domain"},
		{"old opset", func(t *testing.T) []byte { return relu(newGraph(6, "N", 2)).bytes(t) }, "onnx opset 6 is not supported"},
		{"two inputs", func(t *testing.T) []byte {
			b := relu(newGraph(13, "N", 2))
			b.g.Input = append(b.g.Input, b.g.Input[0])
			return b.bytes(t)
		}, "onnx model has 2 inputs"},
		{"int input", func(t *testing.T) []byte {
			b := relu(newGraph(13, "N", 2))
			b.g.Input[0].Type.GetTensorType().ElemType = dtInt64
			return b.bytes(t)
		}, "element type INT64, want float"},
		{"external data", func(t *testing.T) []byte {
			w := &pb.TensorProto{Name: "W", Dims: []int64{2, 2}, DataType: dtFloat, DataLocation: pb.TensorProto_EXTERNAL}
			return newGraph(13, "N", 2).init(w).node("MatMul", "mm", []string{"x", "W"}, []string{"y"}).bytes(t)
		}, `initializer "W": tensor data stored outside the model file`},
		{"raw data size", func(t *testing.T) []byte {
			w := floatT("W", []int{2, 2}, 1, 2, 3)
			return newGraph(13, "N", 2).init(w).node("MatMul", "mm", []string{"x", "W"}, []string{"y"}).bytes(t)
		}, `initializer "W": shape [2 2] of FLOAT needs 16 bytes of raw data, got 12`},
		{"output not produced", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).node("Relu", "r", []string{"x"}, []string{"z"}).bytes(t)
		}, `onnx model output "y" is not produced by any node`},
		{"constant output", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).constant("y", floatT("", []int{1}, 1)).bytes(t)
		}, `onnx model output "y" is a constant`},
		{"conv weight from input", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 3, 3).node("Conv", "c", []string{"x", "x"}, []string{"y"}).bytes(t)
		}, "node c (Conv): weight (input \"x\") must be a constant"},
		{"conv 3-D", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 2, 2, 2).init(floatT("W", []int{1, 1, 1, 1, 1}, 1)).node("Conv", "c", []string{"x", "W"}, []string{"y"}).bytes(t)
		}, "only 1-D (NCL) and 2-D (NCHW) convolutions are supported"},
		{"pad reflect", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(intsT("p", 0, 1, 0, 1)).
				node("Pad", "p", []string{"x", "p"}, []string{"y"}, aStr("mode", "reflect")).bytes(t)
		}, `node p (Pad): pad mode "reflect" is not supported`},
		{"negative pad", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(intsT("p", 0, -1, 0, 1)).node("Pad", "p", []string{"x", "p"}, []string{"y"}).bytes(t)
		}, "negative pads"},
		{"maxpool indices used", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 2, 2).
				node("MaxPool", "mp", []string{"x"}, []string{"m", "idx"}, aInts("kernel_shape", 2, 2)).
				node("Add", "a", []string{"m", "idx"}, []string{"y"}).bytes(t)
		}, `node mp (MaxPool): output "idx" is used`},
		{"pool without kernel", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 2, 2).node("AveragePool", "ap", []string{"x"}, []string{"y"}).bytes(t)
		}, "node ap (AveragePool): kernel_shape must have 2 values"},
		{"pool kernel too big", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 2, 2).node("MaxPool", "mp", []string{"x"}, []string{"y"}, aInts("kernel_shape", 3, 3)).bytes(t)
		}, "node mp (MaxPool): input shape [7 1 2 2], kernel [3 3]"},
		{"dropout training", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(&pb.TensorProto{Name: "t", DataType: dtBool, Int32Data: []int32{1}}).
				node("Dropout", "d", []string{"x", "", "t"}, []string{"y"}).bytes(t)
		}, "dropout in training mode"},
		{"batchnorm training", func(t *testing.T) []byte {
			b := newGraph(15, "N", 2)
			for _, n := range []string{"g", "b", "m", "v"} {
				b.init(floatT(n, []int{2}, 1, 1))
			}
			return b.node("BatchNormalization", "bn", []string{"x", "g", "b", "m", "v"}, []string{"y"}, aInt("training_mode", 1)).bytes(t)
		}, "node bn (BatchNormalization): training mode is not supported"},
		{"div by activation", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(floatT("c", []int{}, 1)).node("Div", "d", []string{"c", "x"}, []string{"y"}).bytes(t)
		}, "division by a value that depends on the input"},
		{"div by zero", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(floatT("c", []int{2}, 1, 0)).node("Div", "d", []string{"x", "c"}, []string{"y"}).bytes(t)
		}, "division by a constant holding 0"},
		{"matmul two activations", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).node("MatMul", "mm", []string{"x", "x"}, []string{"y"}).bytes(t)
		}, "node mm (MatMul): operand shapes [7 2] and [7 2]: inner dimensions differ (2 and 7)"},
		{"gemm shape mismatch", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(floatT("B", []int{3, 1}, 1, 2, 3)).node("Gemm", "g", []string{"x", "B"}, []string{"y"}).bytes(t)
		}, "node g (Gemm): operand shapes [7 2] and [3 1]: inner dimensions differ"},
		{"reshape merges batch", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).init(intsT("s", -1)).node("Reshape", "r", []string{"x", "s"}, []string{"y"}).bytes(t)
		}, "the batch dimension is not kept first"},
		{"reshape bad target", func(t *testing.T) []byte {
			return newGraph(13, "N", 2, 2).init(intsT("s", 0, 3)).node("Reshape", "r", []string{"x", "s"}, []string{"y"}).bytes(t)
		}, "node r (Reshape): cannot reshape [7 2 2] to [0 3]"},
		{"reshape shape from input data", func(t *testing.T) []byte {
			return newGraph(13, "N", 2).node("Reshape", "r", []string{"x", "x"}, []string{"y"}).bytes(t)
		}, "node r (Reshape): shape must be a constant"},
		{"node output twice", func(t *testing.T) []byte {
			return relu(newGraph(13, "N", 2)).node("Relu", "r2", []string{"x"}, []string{"y"}).bytes(t)
		}, `node r2 (Relu): output "y" is defined twice`},
		{"bad attribute type", func(t *testing.T) []byte {
			return newGraph(13, "N", 1, 2, 2).node("MaxPool", "mp", []string{"x"}, []string{"y"}, aInt("kernel_shape", 2)).bytes(t)
		}, "attribute kernel_shape must be a list of ints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, w, err := ImportBytes(tc.data(t))
			if err == nil {
				t.Fatalf("import succeeded, want an error containing %q", tc.want)
			}
			if p != nil || w != nil {
				t.Error("import returned a partial result with its error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestImportReaderLimit(t *testing.T) {
	_, _, err := Import(bytes.NewReader(make([]byte, 10)))
	if err == nil {
		t.Fatal("zeros imported")
	}
}

func FuzzImport(f *testing.F) {
	for _, name := range []string{"seed.onnx", "digits_mlp.onnx", "digits_cnn.onnx", "digits_cnn_bn.onnx", "conv13.onnx"} {
		b, err := os.ReadFile(testdata(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(newGraph(13, "N", 2).init(intsT("s", 0, -1)).node("Reshape", "r", []string{"x", "s"}, []string{"y"}).bytes(f))
	f.Add(newGraph(9, "N", 1, 2, 2).node("Pad", "p", []string{"x"}, []string{"y"}, aInts("pads", 0, 0, 1, 1, 0, 0, 1, 1)).bytes(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, w, err := ImportBytes(b)
		if err != nil {
			if p != nil || w != nil {
				t.Fatal("partial result with an error")
			}
			if strings.Contains(err.Error(), "internal") {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("imported plan is invalid: %v", err)
		}
		if err := plan.CheckWeights(p, w); err != nil {
			t.Fatalf("imported weights do not match the plan: %v", err)
		}
		shapes, err := p.Shapes(1)
		if err != nil {
			t.Fatalf("imported plan has no shapes for batch 1: %v", err)
		}
		total := 0
		for _, s := range shapes {
			total += tensor.Size(s)
		}
		if in := shapes[p.Input.Name]; total <= 1<<14 {
			if _, err := plan.EvalPlain(p, w, tensor.New[float64](in...)); err != nil && !strings.Contains(err.Error(), "non-finite") {
				t.Fatalf("imported plan does not evaluate: %v", err)
			}
		}
	})
}
