package plan

import "github.com/gridmpc/grid/mpcproto/tensor"

// Seed returns the acceptance example, the model grid demo publishes as
// "convnet": the seed's fc1.matmul(x) + bias with fc1 = [2, 4] and bias =
// [1000] (testdata/seed.onnx, exported as written: a MatMul with the
// weight on the left, then an Add), written here as the same function in
// one MatMul node with input [2], weight W [2, 1] and bias B [1], so
// [5, 3] gives 1022 (SeedAnswer).
func Seed() (*Plan, Weights) {
	p := &Plan{
		Version: Version,
		Input:   Value{Name: "input", Shape: []int{2}},
		Output:  "output",
		Weights: []Value{{Name: "W", Shape: []int{2, 1}}, {Name: "B", Shape: []int{1}}},
		Nodes:   []Node{{Name: "fc", Op: MatMul, Inputs: []string{"input", "W", "B"}, Output: "output"}},
	}
	w := Weights{
		"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{2, 4}},
		"B": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1000}},
	}
	return p, w
}

// SeedAnswer is the seed model's exact answer for the input [a, b].
func SeedAnswer(a, b float64) float64 { return 2*a + 4*b + 1000 }
