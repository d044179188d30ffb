package dealer

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// testPlan uses every kind of material: conv, relu, maxpool, mul, mulconst,
// average pool, matmul.
func testPlan() *plan.Plan {
	return &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{-1, 1, 4, 4}},
		Output:  "y",
		Weights: []plan.Value{{Name: "k", Shape: []int{2, 1, 3, 3}}, {Name: "w", Shape: []int{8, 3}}},
		Nodes: []plan.Node{
			{Name: "conv", Op: plan.Conv, Inputs: []string{"x", "k"}, Output: "c", Attrs: plan.Attrs{Pads: []int{1, 1, 1, 1}}},
			{Name: "relu", Op: plan.Relu, Inputs: []string{"c"}, Output: "r"},
			{Name: "pool", Op: plan.MaxPool, Inputs: []string{"r"}, Output: "p", Attrs: plan.Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}},
			{Name: "sq", Op: plan.Mul, Inputs: []string{"p", "p"}, Output: "q"},
			{Name: "half", Op: plan.MulConst, Inputs: []string{"q"}, Output: "h", Attrs: plan.Attrs{Const: &plan.Const{Data: []float64{0.5}}}},
			{Name: "twice", Op: plan.MulConst, Inputs: []string{"h"}, Output: "t", Attrs: plan.Attrs{Const: &plan.Const{Data: []float64{2}}}},
			{Name: "flat", Op: plan.Flatten, Inputs: []string{"t"}, Output: "f", Attrs: plan.Attrs{Axis: 1}},
			{Name: "fc", Op: plan.MatMul, Inputs: []string{"f", "w"}, Output: "y"},
		},
	}
}

func TestSchedule(t *testing.T) {
	sched, err := Schedule(testPlan(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range sched {
		got = append(got, r.Node+":"+r.String())
	}
	want := []string{
		"conv:conv [3 1 4 4] x [2 1 3 3]", "conv:trunc [96]",
		"relu:sign [96]",
		"pool:max [24]x4",
		"sq:mul [3 2 2 2] x [3 2 2 2]", "sq:trunc [24]",
		"half:trunc [24]",
		"fc:matmul [3 8] x [8 3]", "fc:trunc [9]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("schedule\n got %q\nwant %q", got, want)
	}
	bad := testPlan()
	bad.Nodes[0].Op = "Softmax"
	if _, err := Schedule(bad, 1); err == nil || !strings.Contains(err.Error(), "conv") {
		t.Fatalf("unknown op: got %v", err)
	}
}

func TestQuadSubsets(t *testing.T) {
	if len(quadSubsets) != quadSubs {
		t.Fatalf("%d subsets, layout assumes %d", len(quadSubsets), quadSubs)
	}
}

func TestMaxStages(t *testing.T) {
	tests := map[int][]MaxStage{
		1: nil, 2: {{1, 2}}, 4: {{1, 4}}, 5: {{2, 3}, {1, 2}}, 9: {{3, 3}, {1, 3}},
		16: {{6, 3}, {2, 3}, {1, 2}},
	}
	for k, want := range tests {
		if got := MaxStages(k); !slices.Equal(got, want) {
			t.Errorf("MaxStages(%d) = %v, want %v", k, got, want)
		}
	}
}

func TestMaxAndLevels(t *testing.T) {
	for k, want := range map[int][]int{1: nil, 2: nil, 3: {1}, 4: {1, 1}, 9: {4, 2, 1}} {
		if got := maxAndLevels(k); !slices.Equal(got, want) {
			t.Errorf("maxAndLevels(%d) = %v, want %v", k, got, want)
		}
	}
}

// reconstruct combines every party's share of part j of request ri.
func reconstruct(srcs []*Source, ri, j int, xor bool) []uint64 {
	out := slices.Clone(srcs[0].mats[ri].Parts[j])
	for _, s := range srcs[1:] {
		combine(out, s.mats[ri].Parts[j], xor)
	}
	return out
}

// TestDealRelations deals for N = 2, 3, 4, expands every bundle (through
// its encoding) and checks that the reconstructed material satisfies the
// relation of its kind.
func TestDealRelations(t *testing.T) {
	p := testPlan()
	enc := fixed.Default()
	for _, n := range []int{2, 3, 4} {
		bundles, err := Deal(p, 2, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		srcs := make([]*Source, n)
		for i, b := range bundles {
			raw, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if want := bundleHeader + 8*len(b.Common); i < n-1 && len(raw) != want {
				t.Fatalf("N=%d: bundle %d is %d bytes, want the %d-byte header and the common words", n, i, len(raw), want)
			}
			if len(b.Common) > 0 != UsesFSS(n) {
				t.Fatalf("N=%d: %d common words", n, len(b.Common))
			}
			b2, err := UnmarshalBundle(raw)
			if err != nil {
				t.Fatal(err)
			}
			if srcs[i], err = b2.Expand(p); err != nil {
				t.Fatal(err)
			}
		}
		for ri, m := range srcs[0].mats {
			req := m.Req
			switch req.Kind {
			case KindMatMul, KindConv, KindMul:
				a := &tensor.Dense[uint64]{Shape: req.X, Data: reconstruct(srcs, ri, bilinearA, false)}
				b := &tensor.Dense[uint64]{Shape: req.Y, Data: reconstruct(srcs, ri, bilinearB, false)}
				want, err := req.Bilinear(a, b)
				if err != nil {
					t.Fatal(err)
				}
				if got := reconstruct(srcs, ri, bilinearC, false); !slices.Equal(got, want.Data) {
					t.Fatalf("N=%d %s: C != f(A, B)", n, req)
				}
			case KindReluGate, KindTruncReluGate:
				checkGate(t, srcs, ri, enc)
			case KindTrunc:
				r := reconstruct(srcs, ri, truncR, false)
				sh, msb := reconstruct(srcs, ri, truncShift, false), reconstruct(srcs, ri, truncMSB, false)
				for i := range r {
					if sh[i] != r[i]>>enc.Frac || msb[i] != r[i]>>63 {
						t.Fatalf("N=%d %s: element %d wrong", n, req, i)
					}
				}
			case KindSign, KindMax:
				r := reconstruct(srcs, ri, signR, false)
				if bits := reconstruct(srcs, ri, signBits, true); !slices.Equal(r, bits) {
					t.Fatalf("N=%d %s: XOR-shared bits differ from r", n, req)
				}
				fanIn, rhoAt, cands := 0, signRho, req.N
				if req.Kind == KindMax {
					fanIn, rhoAt, cands = len(maxAndLevels(req.K)), maxRho(req.K), req.N*req.K
					if len(r) != maxPairs(req.K)*req.N {
						t.Fatalf("%s: %d comparisons", req, len(r))
					}
				}
				for l := range SignLevels {
					base := signLevel(l)
					masks := make([][]uint64, QuadVars)
					for x := range QuadVars {
						masks[x] = reconstruct(srcs, ri, base+x, true)
						if len(masks[x]) != signLevelWords(l, len(r)) {
							t.Fatalf("level %d width %d", l, len(masks[x]))
						}
					}
					for j, sub := range quadSubsets {
						got := reconstruct(srcs, ri, base+QuadVars+j, true)
						for w := range got {
							want := ^uint64(0)
							for x := range QuadVars {
								if sub&(1<<x) != 0 {
									want &= masks[x][w]
								}
							}
							if got[w] != want {
								t.Fatalf("N=%d %s: level %d product %b word %d wrong", n, req, l, sub, w)
							}
						}
					}
				}
				for l := range fanIn {
					u, v := reconstruct(srcs, ri, maxAnd(l), true), reconstruct(srcs, ri, maxAnd(l)+1, true)
					uv := reconstruct(srcs, ri, maxAnd(l)+2, true)
					for i := range uv {
						if uv[i] != u[i]&v[i] {
							t.Fatalf("N=%d %s: AND triple level %d element %d wrong", n, req, l, i)
						}
					}
				}
				rho := reconstruct(srcs, ri, rhoAt, true)
				rhoA, a, arho := reconstruct(srcs, ri, rhoAt+1, false), reconstruct(srcs, ri, rhoAt+2, false), reconstruct(srcs, ri, rhoAt+3, false)
				if len(rhoA) != cands {
					t.Fatalf("%s: %d candidates", req, len(rhoA))
				}
				for i := range cands {
					bit := rho[i/64] >> (i % 64) & 1
					if rhoA[i] != bit || arho[i] != a[i]*bit {
						t.Fatalf("N=%d %s: rho element %d wrong", n, req, i)
					}
				}
			}
		}
	}
}

func TestSourceChecks(t *testing.T) {
	p := testPlan()
	bundles, err := Deal(p, 1, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := bundles[1].Expand(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(Request{Kind: KindTrunc, N: 5}); err == nil || !strings.Contains(err.Error(), "conv") {
		t.Fatalf("wrong request: got %v", err)
	}
	other := testPlan()
	other.Nodes[7].Name = "renamed"
	if _, err := bundles[0].Expand(other); err == nil || !strings.Contains(err.Error(), "dealt for plan") {
		t.Fatalf("other plan: got %v", err)
	}
	short := *bundles[1]
	short.Explicit = short.Explicit[:len(short.Explicit)-1]
	if _, err := short.Expand(p); err == nil {
		t.Fatal("short explicit: want error")
	}
	long := *bundles[1]
	long.Explicit = append(slices.Clone(long.Explicit), 1)
	if _, err := long.Expand(p); err == nil {
		t.Fatal("long explicit: want error")
	}
	for range src.Remaining() {
		src.pos++
	}
	if _, err := src.Next(Request{Kind: KindTrunc}); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("exhausted: got %v", err)
	}
	if _, err := Deal(p, 1, 1, nil); err == nil {
		t.Fatal("one party: want error")
	}
	if _, err := Deal(p, 1, 3, bytes.NewReader(nil)); err == nil {
		t.Fatal("empty rng: want error")
	}
}

func TestUnmarshalBundleErrors(t *testing.T) {
	b := &Bundle{Party: 1, Parties: 2, Batch: 1, Frac: 16, Explicit: []uint64{1, 2, 3}}
	good, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func([]byte) []byte) []byte { return f(slices.Clone(good)) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"magic", mutate(func(d []byte) []byte { d[0] = 'X'; return d }), "magic"},
		{"version", mutate(func(d []byte) []byte { d[4] = 9; return d }), "version"},
		{"truncated", good[:len(good)-3], "announces"},
		{"extra", append(slices.Clone(good), make([]byte, 8)...), "announces"},
		{"party", mutate(func(d []byte) []byte { d[6] = 5; return d }), "party 5 out of range"},
		{"parties", mutate(func(d []byte) []byte { d[8] = 1; return d }), "1 parties"},
		{"frac", mutate(func(d []byte) []byte { d[5] = 99; return d }), "precision"},
		{"batch", mutate(func(d []byte) []byte { d[10], d[11], d[12], d[13] = 0, 0, 0, 0; return d }), "batch 0"},
		{"explicit for non-last", mutate(func(d []byte) []byte { d[6] = 0; return d }), "explicit words"},
	}
	for _, tc := range tests {
		_, err := UnmarshalBundle(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	got, err := UnmarshalBundle(good)
	if err != nil || !slices.Equal(got.Explicit, b.Explicit) || got.Party != 1 || got.Frac != 16 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func FuzzUnmarshalBundle(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7} {
		b := &Bundle{Party: 2, Parties: 3, Batch: 4, Frac: 16}
		for range n {
			b.Explicit = append(b.Explicit, r.Uint64())
		}
		raw, _ := b.Marshal()
		f.Add(raw)
		b.Party, b.Parties, b.Common = 0, 2, slices.Clone(b.Explicit) // a two-party bundle's DCF words
		b.Explicit = nil
		raw, _ = b.Marshal()
		f.Add(raw)
	}
	f.Add([]byte("GRDB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBundle(data)
		if err != nil {
			return
		}
		raw, err := b.Marshal()
		if err != nil {
			t.Fatalf("decoded bundle does not encode: %v", err)
		}
		if !bytes.Equal(raw, data) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}
