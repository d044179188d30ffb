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
}
