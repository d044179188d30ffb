package onnx

import (
	"math"
	"os"
	"testing"

	"github.com/advancedclimatesystems/gonnx"
	gt "gorgonia.org/tensor"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// TestCrossCheckGonnx evaluates fixtures with gonnx's runtime (which runs
// opset 13 only and has no pooling, Pad or BatchNormalization, hence the
// fixtures chosen) and with the imported plan's plaintext twin, on the same
// inputs.
func TestCrossCheckGonnx(t *testing.T) {
	d := loadDigits(t)
	for _, name := range []string{"seed", "digits_mlp", "conv13"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(testdata(name + ".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := gonnx.NewModelFromBytes(b)
			if err != nil {
				t.Fatalf("gonnx: %v", err)
			}
			p, w, err := ImportBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			var x *tensor.Dense[float64]
			if name == "seed" {
				x = &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}}
			} else {
				sub := &digitsTest{X: d.X[:40]}
				x = digitsBatch(sub, p)
			}
			x32 := make([]float32, len(x.Data))
			for i, v := range x.Data {
				x32[i] = float32(v)
			}
			out, err := m.Run(gonnx.Tensors{m.InputNames()[0]: gt.New(gt.WithShape(x.Shape...), gt.WithBacking(x32))})
			if err != nil {
				t.Fatalf("gonnx run: %v", err)
			}
			ref := out[m.OutputNames()[0]]
			want, ok := ref.Data().([]float32)
			if !ok {
				t.Fatalf("gonnx output is %T", ref.Data())
			}
			got, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != len(want) || got.Len() != ref.Shape().TotalSize() {
				t.Fatalf("plan output shape %v, gonnx %v", got.Shape, ref.Shape())
			}
			for i := range want {
				if diff := math.Abs(got.Data[i] - float64(want[i])); diff > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("element %d: plan %v, gonnx %v", i, got.Data[i], want[i])
				}
			}
		})
	}
}
