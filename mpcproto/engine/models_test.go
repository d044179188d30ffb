package engine

import (
	"math/rand/v2"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// mlp is a fully connected ReLU network over the given layer widths (the
// SecureML "network A" is 784-128-128-10), weights uniform in
// [-1/sqrt(in), 1/sqrt(in)] from r.
func mlp(r *rand.Rand, widths ...int) (*plan.Plan, plan.Weights) {
	p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{-1, widths[0]}}}
	w := plan.Weights{}
	prev := "x"
	for l := 0; l+1 < len(widths); l++ {
		in, out := widths[l], widths[l+1]
		wn, bn := fmtName("w", l), fmtName("b", l)
		p.Weights = append(p.Weights, plan.Value{Name: wn, Shape: []int{in, out}}, plan.Value{Name: bn, Shape: []int{out}})
		w[wn] = uniform(r, 1/sqrtf(in), in, out)
		w[bn] = uniform(r, 1/sqrtf(in), out)
		y := fmtName("fc", l)
		p.Nodes = append(p.Nodes, plan.Node{Name: y, Op: plan.MatMul, Inputs: []string{prev, wn, bn}, Output: y})
		prev = y
		if l+2 < len(widths) {
			z := fmtName("relu", l)
			p.Nodes = append(p.Nodes, plan.Node{Name: z, Op: plan.Relu, Inputs: []string{prev}, Output: z})
			prev = z
		}
	}
	p.Output = prev
	return p, w
}

// smallCNN: conv 3x3 (4 channels, pad 1) + ReLU + 2x2 max pool + fc(64 -> 10)
// over a 1x8x8 input.
func smallCNN(r *rand.Rand) (*plan.Plan, plan.Weights) {
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{-1, 1, 8, 8}},
		Output:  "y",
		Weights: []plan.Value{{Name: "k", Shape: []int{4, 1, 3, 3}}, {Name: "kb", Shape: []int{4}},
			{Name: "w", Shape: []int{64, 10}}, {Name: "b", Shape: []int{10}}},
		Nodes: []plan.Node{
			{Name: "conv", Op: plan.Conv, Inputs: []string{"x", "k", "kb"}, Output: "c", Attrs: plan.Attrs{Pads: []int{1, 1, 1, 1}}},
			{Name: "relu", Op: plan.Relu, Inputs: []string{"c"}, Output: "r"},
			{Name: "pool", Op: plan.MaxPool, Inputs: []string{"r"}, Output: "p", Attrs: plan.Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}},
			{Name: "flat", Op: plan.Flatten, Inputs: []string{"p"}, Output: "f", Attrs: plan.Attrs{Axis: 1}},
			{Name: "fc", Op: plan.MatMul, Inputs: []string{"f", "w", "b"}, Output: "y"},
		},
	}
	w := plan.Weights{"k": uniform(r, 1.0/3, 4, 1, 3, 3), "kb": uniform(r, 0.1, 4),
		"w": uniform(r, 1.0/8, 64, 10), "b": uniform(r, 0.1, 10)}
	return p, w
}

// smallCNNRounds: conv 1 + (truncation and relu fused) 5 + 2x2 max pool
// (all 6 pairs compared at once in 4 rounds, 2 AND levels, select) 7 + fc 2.
const smallCNNRounds = 15

// smallCNNRoundsFSS: with two parties' sign gates, conv 1 + truncation and
// relu fused 1 + 2x2 max pool (a tree of two ReLU levels) 2 + fc 2.
const smallCNNRoundsFSS = 6

// roundsFor picks the round count of n parties: fss with two (sign
// gates), carry otherwise.
func roundsFor(n, carry, fss int) int {
	if dealer.UsesFSS(n) {
		return fss
	}
	return carry
}

func uniform(r *rand.Rand, scale float64, shape ...int) *tensor.Dense[float64] {
	t := tensor.New[float64](shape...)
	for i := range t.Data {
		t.Data[i] = (2*r.Float64() - 1) * scale
	}
	return t
}

func sqrtf(n int) float64 {
	x := float64(n)
	z := x
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

func fmtName(prefix string, i int) string {
	return prefix + string(rune('0'+i))
}
