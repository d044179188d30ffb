package main

import (
	"strings"
	"testing"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// TestModelsOps: grid models shows each model's op count and the ops not
// computed exactly (approximated by the engine, or applied by the client).
func TestModelsOps(t *testing.T) {
	p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{-1, 4}}, Output: "y",
		Nodes: []plan.Node{{Name: "s", Op: plan.SiLU, Inputs: []string{"x"}, Output: "s"},
			{Name: "g", Op: plan.Sigmoid, Inputs: []string{"s"}, Output: "y"}},
		Final: &plan.Final{Op: plan.FinalSoftmax, Axes: []int{1}}}
	enc, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mpc := viewModel(&discovery.Manifest{ID: "eff", Mode: discovery.ModeMPC, Plan: enc, InputShape: []int{-1, 4}, OutputShape: []int{1, 4}})
	if mpc.Ops != 3 || strings.Join(mpc.Approximated, ", ") != "SiLU≈, Sigmoid≈, Softmax (client)" {
		t.Fatalf("mpc view: %d ops, approximated %q", mpc.Ops, mpc.Approximated)
	}
	plain := viewModel(&discovery.Manifest{ID: "p", Mode: discovery.ModePlain, Plan: enc})
	if plain.Ops != 3 || len(plain.Approximated) != 0 {
		t.Fatalf("plain view: %d ops, approximated %q", plain.Ops, plain.Approximated)
	}
	var b strings.Builder
	if err := writeModelsTable(&b, []modelView{mpc, plain}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"OPS", "APPROXIMATED", "SiLU≈, Sigmoid≈, Softmax (client)", "  3  "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)
}
