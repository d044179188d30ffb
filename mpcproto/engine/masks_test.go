package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// TestWeightMasksAgainstTwin: with weight masks, a deployment answers many
// queries (MatMul and Conv on masked weights) like the plaintext twin, and
// a query sends fewer bytes than without masks.
func TestWeightMasksAgainstTwin(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(41, 42))
	cnn, cw := smallCNN(r)
	seed, sw := seedPlan()
	cases := []struct {
		name string
		p    *plan.Plan
		w    plan.Weights
		x    func() *tensor.Dense[float64]
		tol  float64
	}{
		{"seed", seed, sw, func() *tensor.Dense[float64] { return &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}} }, 1.0 / (1 << 15)},
		{"cnn", cnn, cw, func() *tensor.Dense[float64] { return randVals(r, 2, 1, 8, 8) }, 0.01},
	}
	for _, tc := range cases {
		for _, n := range []int{2, 3, 4} {
			l, err := NewLocal(ctx, tc.p, tc.w, n, WithWeightMasks())
			if err != nil {
				t.Fatalf("%s N=%d: %v", tc.name, n, err)
			}
			if l.Setup.Rounds != 1 {
				t.Errorf("%s N=%d: setup took %d rounds, want 1", tc.name, n, l.Setup.Rounds)
			}
			for q := range 3 {
				x := tc.x()
				want, err := plan.EvalPlain(tc.p, tc.w, x)
				if err != nil {
					t.Fatal(err)
				}
				got, st, err := l.Infer(ctx, x)
				if err != nil {
					t.Fatalf("%s N=%d query %d: %v", tc.name, n, q, err)
				}
				for i := range got.Data {
					if math.Abs(got.Data[i]-want.Data[i]) > tc.tol {
						t.Fatalf("%s N=%d query %d: element %d = %v, twin %v", tc.name, n, q, i, got.Data[i], want.Data[i])
					}
				}
				_, plain, err := RunLocal(ctx, tc.p, tc.w, x, n)
				if err != nil {
					t.Fatal(err)
				}
				if st.BytesSent >= plain.BytesSent || st.Rounds != plain.Rounds {
					t.Fatalf("%s N=%d: masked query sends %d bytes in %d rounds, unmasked %d in %d",
						tc.name, n, st.BytesSent, st.Rounds, plain.BytesSent, plain.Rounds)
				}
			}
		}
	}
}

func TestWeightMasksMismatch(t *testing.T) {
	ctx := context.Background()
	p, w := seedPlan()
	enc := fixed.Default()
	ws := map[string]*tensor.Dense[uint64]{}
	for name, v := range w {
		e, err := enc.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		ws[name] = e
	}
	in := tensor.New[uint64](2)
	m, err := dealer.NewMasks(p, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	masked, err := dealer.DealMasked(p, 1, enc, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	plainB, err := dealer.Deal(p, 1, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := transport.NewNetwork(2).Transport(0)
	_, _, err = RunParty(ctx, Config{Plan: p, Enc: enc}, tr, ws, in, masked[0])
	wantErr(t, "masked bundle without masks", err, "weight masks", "OpenMasks")
	other, _ := dealer.NewMasks(p, 2, nil)
	_, _, err = RunParty(ctx, Config{Plan: p, Enc: enc, Masks: &WeightMasks{ID: other.ID}}, tr, ws, in, masked[0])
	wantErr(t, "other mask set", err, "mask set")
	_, _, err = RunParty(ctx, Config{Plan: p, Enc: enc, Masks: &WeightMasks{ID: m.ID}}, tr, ws, in, plainB[0])
	wantErr(t, "plain bundle with masks", err, "mask set")
	_, _, err = OpenMasks(ctx, p, tr, ws, m.Bundles()[1])
	wantErr(t, "wrong party's mask bundle", err, "mask bundle is for party 1")
	delete(ws, "W")
	_, _, err = OpenMasks(ctx, p, tr, ws, m.Bundles()[0])
	if err == nil || !strings.Contains(err.Error(), `"W"`) {
		t.Fatalf("missing weight: got %v", err)
	}
}

// TestWeightMasksPersist: a party's mask state survives Marshal and
// UnmarshalWeightMasks and still serves queries.
func TestWeightMasksPersist(t *testing.T) {
	ctx := context.Background()
	p, w := seedPlan()
	l, err := NewLocal(ctx, p, w, 3, WithWeightMasks())
	if err != nil {
		t.Fatal(err)
	}
	for i, wm := range l.wm {
		raw, err := wm.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if l.wm[i], err = UnmarshalWeightMasks(raw); err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{0, 10, len(raw) - 1} {
			if _, err := UnmarshalWeightMasks(raw[:cut]); err == nil {
				t.Fatalf("truncated to %d bytes: want error", cut)
			}
		}
	}
	y, _, err := l.Infer(ctx, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(y.Data[0]-1022) > 1.0/(1<<15) {
		t.Fatalf("got %v", y.Data)
	}
}

func FuzzUnmarshalWeightMasks(f *testing.F) {
	wm := &WeightMasks{B: map[string]*tensor.Dense[uint64]{"W": tensor.New[uint64](2, 1)},
		F: map[string]*tensor.Dense[uint64]{"W": tensor.New[uint64](2, 1)}}
	raw, _ := wm.Marshal()
	f.Add(raw)
	f.Add([]byte("GRDW"))
	f.Fuzz(func(t *testing.T, data []byte) {
		wm, err := UnmarshalWeightMasks(data)
		if err != nil {
			return
		}
		out, err := wm.Marshal()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		if len(out) != len(data) {
			t.Fatalf("re-encoding has %d bytes, input %d", len(out), len(data))
		}
	})
}

// TestMatMulFormsMasked: every MatMul form (weights on the left or right,
// 1-D to batched) agrees with the twin for N = 2, 3, 4, with weight masks
// and without; with masks a query opens no weight that enters its product
// as stored (fewer bytes, same rounds).
func TestMatMulFormsMasked(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(43, 44))
	for i := range matMulForms {
		for it := range 2 {
			p, w, x := matMulForm(r, i)
			want, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatalf("form %d: %v", i, err)
			}
			masked := len(dealer.MaskedWeights(p)) > 0
			for _, n := range []int{2, 3, 4} {
				label := fmt.Sprintf("form %d instance %d N=%d", i, it, n)
				l, err := NewLocal(ctx, p, w, n, WithWeightMasks())
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				got, st, err := l.Infer(ctx, x)
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				for j := range got.Data {
					if math.Abs(got.Data[j]-want.Data[j]) > 1.0/(1<<13) {
						t.Fatalf("%s: element %d = %v, twin %v", label, j, got.Data[j], want.Data[j])
					}
				}
				plain := compare(t, label+" unmasked", p, w, x, n, 1.0/(1<<13))
				if masked && (st.BytesSent >= plain.BytesSent || st.Rounds != plain.Rounds) {
					t.Fatalf("%s: masked query sends %d bytes in %d rounds, unmasked %d in %d",
						label, st.BytesSent, st.Rounds, plain.BytesSent, plain.Rounds)
				}
			}
		}
	}
}
