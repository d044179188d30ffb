package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestEmbeddedSeedMatchesTestdata(t *testing.T) {
	want, err := os.ReadFile("../../testdata/seed.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seedONNX, want) {
		t.Fatal("cmd/grid/seed.onnx differs from testdata/seed.onnx: copy it again")
	}
	p, w, err := seedModel()
	if err != nil {
		t.Fatal(err)
	}
	y, err := plan.EvalPlain(p, w, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Data) != 1 || y.Data[0] != 1022 {
		t.Fatalf("seed model on [5, 3] = %v, want [1022]", y.Data)
	}
	// The ONNX file is the export of the model plan.Seed defines.
	sp, sw := plan.Seed()
	for _, in := range [][]float64{{5, 3}, {0, 0}, {-1.5, 2}, {100, -7}} {
		x := &tensor.Dense[float64]{Shape: []int{2}, Data: in}
		a, aerr := plan.EvalPlain(p, w, x)
		b, berr := plan.EvalPlain(sp, sw, x)
		if aerr != nil || berr != nil || a.Data[0] != b.Data[0] || a.Data[0] != plan.SeedAnswer(in[0], in[1]) {
			t.Fatalf("on %v: seed.onnx %v (%v), plan.Seed %v (%v), want %v", in, a, aerr, b, berr, plan.SeedAnswer(in[0], in[1]))
		}
	}
}
