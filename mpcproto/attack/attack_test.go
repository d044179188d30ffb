package attack

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// TestSelfDealRecoversWeights is the control: holders that take a
// self-dealing client's bundles report success, and the client reads every
// weight of a random 4-6-2 MLP off one batch.
func TestSelfDealRecoversWeights(t *testing.T) {
	for _, tc := range []struct{ d, h, o, n int }{{4, 6, 2, 2}, {4, 6, 2, 3}, {3, 5, 4, 2}} {
		p, w := NewMLP(rand.New(rand.NewPCG(uint64(tc.d), uint64(tc.n))), tc.d, tc.h, tc.o)
		s, err := SelfDeal(p, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + 2*tc.h + tc.h*tc.d; s.Batch != want || s.Input.Shape[0] != want {
			t.Fatalf("batch %d (input %v), want %d", s.Batch, s.Input.Shape, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _, err := RunHolders(ctx, p, w, s.Input, s.Bundles, s.Enc)
		cancel()
		if err != nil {
			t.Fatalf("%d-%d-%d N=%d: holders failed: %v", tc.d, tc.h, tc.o, tc.n, err)
		}
		got, err := s.Recover(out)
		if err != nil {
			t.Fatal(err)
		}
		worst, at, err := MaxAbsError(got, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d-%d-%d N=%d batch %d: %d weights, max abs error %.2g (%s)",
			tc.d, tc.h, tc.o, tc.n, s.Batch, count(w), worst, at)
		if worst > 1e-3 {
			t.Errorf("%d-%d-%d N=%d: max abs error %g at %s, want <= 1e-3", tc.d, tc.h, tc.o, tc.n, worst, at)
		}
	}
}

// TestHonestDealerDefeatsAttack models the fixed network: the client sends
// the same batch, but the bundles come from a dealer it does not control
// (plain dealer.Deal). The rows are ordinary inferences, and what Recover
// reads off them is far from the true weights.
func TestHonestDealerDefeatsAttack(t *testing.T) {
	p, w := NewMLP(rand.New(rand.NewPCG(4, 2)), 4, 6, 2)
	s, err := SelfDeal(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := dealer.DealWith(p, s.Batch, s.Parties, s.Enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _, err := RunHolders(ctx, p, w, s.Input, honest, s.Enc)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := plan.EvalPlain(p, w, s.Input)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain.Data {
		if math.Abs(out.Data[i]-plain.Data[i]) > 1e-3 {
			t.Fatalf("output %d: %g, the plaintext twin gives %g: honest bundles must give the model's output",
				i, out.Data[i], plain.Data[i])
		}
	}
	got, err := s.Recover(out)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := Errors(got, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("honest dealer: errors per weight %v", errs)
	for _, name := range []string{"w0", "b0", "w1"} {
		if e, scale := errs[name], maxAbs(w[name].Data); e < scale/4 {
			t.Errorf("%s recovered within %g of the truth (largest |weight| %g): the attack must fail", name, e, scale)
		}
	}
}

// TestTamperScale checks the edit itself: the last bundle differs from an
// honest deal with the same seeds exactly by ±M·2^(2f) on the first
// product's C words, and nowhere else.
func TestTamperScale(t *testing.T) {
	p, _ := NewMLP(rand.New(rand.NewPCG(1, 1)), 4, 6, 2)
	seed := strings.Repeat("grid attack seeds ", 64)
	s, err := SelfDealWith(p, 3, Options{Rand: strings.NewReader(seed)})
	if err != nil {
		t.Fatal(err)
	}
	honest, err := dealer.Deal(p, s.Batch, 3, strings.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	got, want := s.Bundles[2].Explicit, honest[2].Explicit
	if len(got) != len(want) {
		t.Fatalf("%d explicit words, honest %d", len(got), len(want))
	}
	m := uint64(DefaultOffset) << (2 * fixed.DefaultFrac)
	for i := range want {
		d := got[i] - want[i]
		var exp uint64
		if i < s.Batch*6 {
			row, k := s.Rows[i/6], i%6
			exp = -m
			if k == row.Unit {
				exp = uint64(row.Offset) << (2 * fixed.DefaultFrac)
			}
		}
		if d != exp {
			t.Fatalf("explicit word %d moved by %#x, want %#x", i, d, exp)
		}
	}
}

// TestSelfDealRefuses checks the errors: other plan shapes, bad offsets,
// outputs of the wrong shape.
func TestSelfDealRefuses(t *testing.T) {
	p, w := NewMLP(rand.New(rand.NewPCG(2, 2)), 4, 6, 2)
	deeper := *p
	deeper.Nodes = append(deeper.Nodes[:2:2], plan.Node{Name: "id", Op: plan.Identity, Inputs: []string{"a"}, Output: "a2"},
		plan.Node{Name: "fc1", Op: plan.MatMul, Inputs: []string{"a2", "w1", "b1"}, Output: "y"})
	if _, err := SelfDeal(&deeper, 2); err == nil || !strings.Contains(err.Error(), "Relu") {
		t.Errorf("plan with an extra node: err %v", err)
	}
	if _, err := SelfDealWith(p, 2, Options{Offset: 1 << 30}); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("offset 2^30: err %v", err)
	}
	if _, err := SelfDeal(p, 1); err == nil {
		t.Error("one party: no error")
	}
	s, err := SelfDeal(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.EvalPlain(p, w, s.Input)
	if err != nil {
		t.Fatal(err)
	}
	out.Shape = []int{out.Shape[1], out.Shape[0]}
	if _, err := s.Recover(out); err == nil || !strings.Contains(err.Error(), "output shape") {
		t.Errorf("transposed output: err %v", err)
	}
	if _, _, err := MaxAbsError(plan.Weights{}, w); err == nil {
		t.Error("compare with nothing: no error")
	}
}

func count(w plan.Weights) int {
	n := 0
	for _, t := range w {
		n += len(t.Data)
	}
	return n
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
