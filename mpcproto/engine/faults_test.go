//go:build gridfault

package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// faultCases are the deliberate faults the privacy checks must detect,
// with the checks (name prefixes) expected to: each keeps every output
// correct, so no correctness test can.
var faultCases = []struct {
	name   string
	dealer dealer.Faults
	engine Faults
	want   []string
}{
	{"ReLU a = r", dealer.Faults{ReluAEqualsR: true}, Faults{},
		[]string{"query: mask provenance", "queries on one mask set, last holder: determined"}},
	{"rho = 0 on the used bits", dealer.Faults{RhoZero: true}, Faults{},
		[]string{"query: mask provenance", "queries on one mask set, last holder: constant bits"}},
	{"mask stream restarted per weight", dealer.Faults{MaskStreamRestart: true}, Faults{},
		[]string{"mask opening: mask provenance", "setup F = W - B: determined"}},
	{"output re-randomisation skipped", dealer.Faults{}, Faults{SkipRerandomization: true},
		[]string{"client: output shares", "client: final ReLU"}},
	{"DCF gate mask reused", dealer.Faults{GateMaskReuse: true}, Faults{},
		[]string{"query: mask provenance", "queries by two holders (DCF keys), last holder: determined"}},
	{"DCF root seeds zero", dealer.Faults{GateRootsZero: true}, Faults{},
		[]string{"queries by two holders (DCF keys), last holder: constant bits"}},
}

// TestPrivacyFaultsDetected is the control of the privacy checks: with
// each fault switched on, the outputs stay correct, and the checks that
// should see the fault report a leak at least twice their limit (the
// honest protocol scores 0 on every check: TestPrivacySecondOrder,
// TestMaskProvenance).
func TestPrivacyFaultsDetected(t *testing.T) {
	for _, fc := range faultCases {
		t.Run(fc.name, func(t *testing.T) {
			defer dealer.SetFaults(fc.dealer)()
			defer SetFaults(fc.engine)()
			checkOutputsCorrect(t)
			g := newProvenanceRig(t)
			vs := append(privacyVerdicts(t), checkProvenance(t, "mask opening", g.setup),
				checkProvenance(t, "query", g.query))
			detected := 0
			for _, v := range vs {
				mark := "  "
				if v.leak() {
					detected++
					mark = "! "
				}
				t.Log(mark + v.String())
			}
			if detected == 0 {
				t.Fatal("no privacy check detects the fault")
			}
			for _, w := range fc.want {
				v, ok := findVerdict(vs, w)
				switch {
				case !ok:
					t.Errorf("no check named %q", w)
				case !v.leak() || v.stat < 2*v.limit:
					t.Errorf("%s does not detect the fault far above its limit: %v", w, v)
				}
			}
		})
	}
}

func findVerdict(vs []verdict, prefix string) (verdict, bool) {
	for _, v := range vs {
		if strings.HasPrefix(v.check, prefix) {
			return v, true
		}
	}
	return verdict{}, false
}

// checkOutputsCorrect runs the privacy model (with and without weight
// masks, N = 2 and 3, both secret inputs) and the ReLU head against the
// plaintext twin: a fault must not show in the outputs.
func checkOutputsCorrect(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p, w := privacyModel(rand.New(rand.NewPCG(1, 7)), 0.25)
	hp, hw := reluHead(rand.New(rand.NewPCG(6, 6)))
	cases := []struct {
		p *plan.Plan
		w plan.Weights
		x *tensor.Dense[float64]
	}{
		{p, w, privacyInputs()[0]},
		{p, w, privacyInputs()[1]},
		{hp, hw, randVals(rand.New(rand.NewPCG(7, 7)), 16, 4)},
	}
	for ci, tc := range cases {
		want, err := plan.EvalPlain(tc.p, tc.w, tc.x)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{2, 3} {
			for _, opts := range [][]Option{nil, {WithWeightMasks()}} {
				got, _, err := RunLocal(ctx, tc.p, tc.w, tc.x, n, opts...)
				if err != nil {
					t.Fatalf("case %d N=%d: %v", ci, n, err)
				}
				for i, v := range got.Data {
					if math.Abs(v-want.Data[i]) > 1e-3 {
						t.Fatalf("case %d N=%d masks %v: output %d = %v, twin %v: the fault changes outputs",
							ci, n, opts != nil, i, v, want.Data[i])
					}
				}
			}
		}
	}
}
