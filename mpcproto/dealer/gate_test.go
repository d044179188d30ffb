package dealer

import (
	"slices"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/fss"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// checkGate checks the gate material of request ri of two parties'
// sources: the truncation parts of a fused gate, the shares of m·u_j, and
// that the DCF keys compare with alpha = r mod 2^(k-1) with payload
// (1-2m)·u, at alpha and around it.
func checkGate(t *testing.T, srcs []*Source, ri int, enc fixed.Encoding) {
	t.Helper()
	if len(srcs) != 2 {
		t.Fatalf("gate material for %d parties", len(srcs))
	}
	req := srcs[0].mats[ri].Req
	g := [2]Gate{srcs[0].mats[ri].Gate(), srcs[1].mats[ri].Gate()}
	r := reconstruct(srcs, ri, gateR, false)
	mu := reconstruct(srcs, ri, gateBase(req.Kind)+1, false)
	if !slices.Equal(g[0].CW, g[1].CW) {
		t.Fatalf("%s: the parties' correction words differ", req)
	}
	y := fss.Layout{Bits: g[0].Bits - 1, Width: g[0].Width, Keys: len(r)}
	for i, ri := range r {
		alpha, m, err := fss.SignAlpha(ri, g[0].Bits)
		if err != nil {
			t.Fatal(err)
		}
		u := []uint64{1, ri}
		if req.Kind == KindTruncReluGate {
			u = []uint64{1, ri >> enc.Frac, ri >> 63}
		}
		for j, v := range u {
			if mu[i*len(u)+j] != m*v {
				t.Fatalf("%s: element %d: share of m·u_%d wrong", req, i, j)
			}
		}
		for _, x := range []uint64{alpha, alpha - 1, alpha + 1, 0} {
			x &= 1<<(g[0].Bits-1) - 1
			sum := make([]uint64, len(u))
			for p := range 2 {
				out := make([]uint64, len(u))
				root := fss.Seed{g[p].Roots[2*i], g[p].Roots[2*i+1]}
				if err := fss.Eval(p, root, y.Key(g[p].CW, i), g[0].Bits-1, x, out); err != nil {
					t.Fatal(err)
				}
				for j := range out {
					sum[j] += out[j]
				}
			}
			for j, v := range u {
				want := uint64(0)
				if x < alpha {
					want = (1 - 2*m) * v
				}
				if sum[j] != want {
					t.Fatalf("%s: element %d: DCF at %#x (alpha %#x) word %d wrong", req, i, x, alpha, j)
				}
			}
		}
	}
}

// TestGateSchedule: with two parties a Relu after a product takes a fused
// gate in place of the product's truncation and the sign test, a Relu
// alone a ReLU gate, a MaxPool a tree of ReLU gates; with three, the
// schedule keeps the carry circuit.
func TestGateSchedule(t *testing.T) {
	p := testPlan()
	kinds := func(n int) []Kind {
		s, err := ScheduleFor(p, 2, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []Kind
		for _, r := range s {
			out = append(out, r.Kind)
		}
		return out
	}
	want2 := []Kind{KindConv, KindTruncReluGate, KindReluGate, KindReluGate, KindMul, KindTrunc, KindTrunc,
		KindMatMul, KindTrunc}
	if got := kinds(2); !slices.Equal(got, want2) {
		t.Errorf("N=2 schedule %v, want %v", got, want2)
	}
	want3 := []Kind{KindConv, KindTrunc, KindSign, KindMax, KindMul, KindTrunc, KindTrunc, KindMatMul, KindTrunc}
	if got := kinds(3); !slices.Equal(got, want3) {
		t.Errorf("N=3 schedule %v, want %v", got, want3)
	}
	for _, tc := range []struct {
		k    int
		want []int
	}{{2, []int{1}}, {3, []int{1, 1}}, {4, []int{2, 1}}, {9, []int{4, 2, 1, 1}}} {
		if got := MaxGateLevels(tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("MaxGateLevels(%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
	if ReluFollows([]plan.Node{{Output: "a"}}, 0) {
		t.Error("ReluFollows past the end")
	}
}

// TestGatesBounded: two parties take sign gates while their keys fit in
// MaxGateBytes per party, the carry circuit beyond (a large batch), and
// three parties never take them.
func TestGatesBounded(t *testing.T) {
	p := testPlan()
	for _, tc := range []struct {
		batch, n int
		want     bool
	}{{1, 2, true}, {100, 2, true}, {2000, 2, false}, {1, 3, false}} {
		got, err := UsesGates(p, tc.batch, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		sched, err := ScheduleFor(p, tc.batch, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || (gateBytes(sched) > 0) != tc.want {
			t.Errorf("batch %d N=%d: gates %v (%d key bytes), want %v", tc.batch, tc.n, got, gateBytes(sched), tc.want)
		}
		if gateBytes(sched) > MaxGateBytes {
			t.Errorf("batch %d N=%d: %d key bytes per party", tc.batch, tc.n, gateBytes(sched))
		}
	}
}
