package main

import (
	_ "embed"
	"fmt"

	"github.com/gridmpc/grid/mpcproto/onnx"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// seedONNX is a copy of testdata/seed.onnx (a test checks they match): the
// seed acceptance model "convnet" as the seed writes it, fc1.matmul(x) +
// bias with fc1 = [2, 4] and bias = [1000] (the weight on the left of the
// MatMul), so [5, 3] -> [1022].
//
//go:embed seed.onnx
var seedONNX []byte

// seedModel imports the embedded seed model.
func seedModel() (*plan.Plan, plan.Weights, error) {
	p, w, err := onnx.ImportBytes(seedONNX)
	if err != nil {
		return nil, nil, fmt.Errorf("import embedded seed.onnx: %w", err)
	}
	return p, w, nil
}
