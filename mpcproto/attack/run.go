package attack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// RunHolders runs one session of p in process with the given bundles: the
// owner's weights w and the client's input x are encoded with enc and
// shared among len(bundles) holders, and holder i runs engine.RunParty with
// bundle i over an in-memory transport.Network, taking the bundles as the
// engine does (unchecked). It returns the reconstructed, decoded output and
// every holder's stats; on failure the error joins every holder's error
// (the others are cancelled after the first).
func RunHolders(ctx context.Context, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64],
	bundles []*dealer.Bundle, enc fixed.Encoding) (*tensor.Dense[float64], []engine.Stats, error) {
	n := len(bundles)
	if n < 2 {
		return nil, nil, fmt.Errorf("attack: run holders: %d bundles, need 2 or more", n)
	}
	if x == nil {
		return nil, nil, errors.New("attack: run holders: nil input")
	}
	weights, err := shareWeights(w, n, enc)
	if err != nil {
		return nil, nil, err
	}
	ex, err := enc.Encode(x)
	if err != nil {
		return nil, nil, fmt.Errorf("attack: run holders: input: %w", err)
	}
	in, err := share.Split(ex, n, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("attack: run holders: input: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nw := transport.NewNetwork(n)
	outs, stats, errs := make([]*tensor.Dense[uint64], n), make([]engine.Stats, n), make([]error, n)
	done := make(chan int, n)
	for i := range n {
		go func() {
			cfg := engine.Config{Plan: p, Enc: enc} // batch from the input share
			outs[i], stats[i], errs[i] = engine.RunParty(ctx, cfg, nw.Transport(i), weights[i], in[i], bundles[i])
			done <- i
		}()
	}
	for range n {
		if i := <-done; errs[i] != nil {
			cancel()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, stats, fmt.Errorf("attack: run holders: %w", err)
	}
	y, err := share.ReconstructN(outs, n)
	if err != nil {
		return nil, stats, fmt.Errorf("attack: run holders: output: %w", err)
	}
	return enc.Decode(y), stats, nil
}

// shareWeights encodes every weight and splits it into n additive shares,
// as the owner does at publishing: one map of shares per holder.
func shareWeights(w plan.Weights, n int, enc fixed.Encoding) ([]map[string]*tensor.Dense[uint64], error) {
	out := make([]map[string]*tensor.Dense[uint64], n)
	for i := range out {
		out[i] = make(map[string]*tensor.Dense[uint64], len(w))
	}
	for name, t := range w {
		et, err := enc.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("attack: weight %q: %w", name, err)
		}
		ss, err := share.Split(et, n, nil)
		if err != nil {
			return nil, fmt.Errorf("attack: weight %q: %w", name, err)
		}
		for i := range n {
			out[i][name] = ss[i]
		}
	}
	return out, nil
}

// NewMLP is a random Linear(in → hidden) → ReLU → Linear(hidden → out) model
// with biases, the shape SelfDeal attacks: input "x" [-1, in], weights
// "w0" [in, hidden], "b0" [hidden], "w1" [hidden, out], "b1" [out], uniform
// in ±1/sqrt(fan-in) from r (PyTorch's default range for nn.Linear).
func NewMLP(r *rand.Rand, in, hidden, out int) (*plan.Plan, plan.Weights) {
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{-1, in}},
		Output:  "y",
		Weights: []plan.Value{{Name: "w0", Shape: []int{in, hidden}}, {Name: "b0", Shape: []int{hidden}},
			{Name: "w1", Shape: []int{hidden, out}}, {Name: "b1", Shape: []int{out}}},
		Nodes: []plan.Node{
			{Name: "fc0", Op: plan.MatMul, Inputs: []string{"x", "w0", "b0"}, Output: "h"},
			{Name: "relu0", Op: plan.Relu, Inputs: []string{"h"}, Output: "a"},
			{Name: "fc1", Op: plan.MatMul, Inputs: []string{"a", "w1", "b1"}, Output: "y"},
		},
	}
	uniform := func(fanIn int, shape ...int) *tensor.Dense[float64] {
		t := tensor.New[float64](shape...)
		s := 1 / math.Sqrt(float64(fanIn))
		for i := range t.Data {
			t.Data[i] = (2*r.Float64() - 1) * s
		}
		return t
	}
	w := plan.Weights{"w0": uniform(in, in, hidden), "b0": uniform(in, hidden),
		"w1": uniform(hidden, hidden, out), "b1": uniform(hidden, out)}
	return p, w
}
