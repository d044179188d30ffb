package dealer

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestMaskedWeights(t *testing.T) {
	if got := MaskedWeights(testPlan()); !slices.Equal(got, []string{"k", "w"}) {
		t.Fatalf("got %v", got)
	}
}

// TestDealMasked: with masks, the bilinear material holds no B, and
// C = f(A, B) for B the sum of every party's mask shares.
func TestDealMasked(t *testing.T) {
	p := testPlan()
	for _, n := range []int{2, 3, 4} {
		m, err := NewMasks(p, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		mbs := m.Bundles()
		B := map[string][]uint64{}
		for _, mb := range mbs {
			raw, err := mb.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			mb2, err := UnmarshalMaskBundle(raw)
			if err != nil {
				t.Fatal(err)
			}
			sh, err := mb2.Expand(p)
			if err != nil {
				t.Fatal(err)
			}
			for name, s := range sh {
				if B[name] == nil {
					B[name] = make([]uint64, len(s.Data))
				}
				combine(B[name], s.Data, false)
			}
		}
		bundles, err := DealMasked(p, 2, fixed.Default(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		srcs := make([]*Source, n)
		for i, b := range bundles {
			if b.Masks != m.ID || !b.Masked() {
				t.Fatal("bundle does not name the mask set")
			}
			if srcs[i], err = b.Expand(p); err != nil {
				t.Fatal(err)
			}
		}
		fixedSeen := 0
		for ri, mat := range srcs[0].mats {
			req := mat.Req
			if req.Kind != KindMatMul && req.Kind != KindConv {
				continue
			}
			if req.FixedB == "" {
				t.Fatalf("%s: no fixed B", req)
			}
			fixedSeen++
			if len(mat.Parts[bilinearB]) != 0 {
				t.Fatalf("%s: material carries a B", req)
			}
			a := &tensor.Dense[uint64]{Shape: req.X, Data: reconstruct(srcs, ri, bilinearA, false)}
			want, err := req.Bilinear(a, &tensor.Dense[uint64]{Shape: req.Y, Data: B[req.FixedB]})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(reconstruct(srcs, ri, bilinearC, false), want.Data) {
				t.Fatalf("N=%d %s: C != A·B", n, req)
			}
		}
		if fixedSeen != 2 {
			t.Fatalf("%d fixed-B requests, want 2", fixedSeen)
		}
	}
	other := testPlan()
	other.Nodes[0].Name = "renamed"
	m, _ := NewMasks(p, 2, nil)
	if _, err := DealMasked(other, 1, fixed.Default(), m, nil); err == nil || !strings.Contains(err.Error(), "masks were made for plan") {
		t.Fatalf("other plan: got %v", err)
	}
	if _, err := m.Bundles()[0].Expand(other); err == nil {
		t.Fatal("mask bundle for another plan: want error")
	}
}

func TestUnmarshalMaskBundleErrors(t *testing.T) {
	good, err := (&MaskBundle{Party: 1, Parties: 3}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func([]byte)) []byte { d := slices.Clone(good); f(d); return d }
	for name, data := range map[string][]byte{
		"short":   good[:10],
		"long":    append(slices.Clone(good), 0),
		"magic":   mutate(func(d []byte) { d[1] = 'x' }),
		"version": mutate(func(d []byte) { d[4] = 7 }),
		"party":   mutate(func(d []byte) { d[5] = 3 }),
		"parties": mutate(func(d []byte) { d[7] = 1 }),
	} {
		if _, err := UnmarshalMaskBundle(data); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
	if _, err := (&MaskBundle{Party: 2, Parties: 2}).Marshal(); err == nil {
		t.Error("marshal of a bad bundle: want error")
	}
}

func FuzzUnmarshalMaskBundle(f *testing.F) {
	good, _ := (&MaskBundle{Party: 1, Parties: 3}).Marshal()
	f.Add(good)
	f.Add([]byte("GRDM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalMaskBundle(data)
		if err != nil {
			return
		}
		raw, err := b.Marshal()
		if err != nil || !bytes.Equal(raw, data) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func TestMasksRoundTrip(t *testing.T) {
	m, err := NewMasks(testPlan(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := UnmarshalMasks(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID != m.ID || m2.PlanHash != m.PlanHash || !slices.Equal(m2.Seeds, m.Seeds) {
		t.Fatal("round trip differs")
	}
	// a restored mask state deals like the original
	if _, err := DealMasked(testPlan(), 1, fixed.Default(), m2, nil); err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(raw)
	bad[len(bad)-1] ^= 1
	if _, err := UnmarshalMasks(bad); err == nil {
		t.Fatal("tampered seed: want error")
	}
	for _, d := range [][]byte{nil, raw[:50], append(slices.Clone(raw), 0)} {
		if _, err := UnmarshalMasks(d); err == nil {
			t.Fatalf("%d bytes: want error", len(d))
		}
	}
}

func FuzzUnmarshalMasks(f *testing.F) {
	m, _ := NewMasks(testPlan(), 2, nil)
	raw, _ := m.Marshal()
	f.Add(raw)
	f.Add([]byte("GRDK"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := UnmarshalMasks(data)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

// leftPlan is W @ x with the weight on the left, then a batched product
// with a 3-D weight (not masked) and a right weight.
func leftPlan() *plan.Plan {
	return &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{-1, 4, 5}},
		Output:  "z",
		Weights: []plan.Value{{Name: "wl", Shape: []int{3, 4}}, {Name: "wb", Shape: []int{2, 2, 3}},
			{Name: "wr", Shape: []int{5, 2}}},
		Nodes: []plan.Node{
			{Name: "left", Op: plan.MatMul, Inputs: []string{"wl", "x"}, Output: "y"},
			{Name: "batched", Op: plan.MatMul, Inputs: []string{"wb", "y"}, Output: "u"},
			{Name: "right", Op: plan.MatMul, Inputs: []string{"u", "wr"}, Output: "z"},
		},
	}
}

// TestDealMaskedLeft: a weight on the left of a MatMul gets a mask that
// serves as A (the material holds no A, C = mask·B); a 3-D weight in a
// batched product gets none.
func TestDealMaskedLeft(t *testing.T) {
	p := leftPlan()
	if got := MaskedWeights(p); !slices.Equal(got, []string{"wl", "wr"}) {
		t.Fatalf("masked weights %v, want [wl wr]", got)
	}
	for _, n := range []int{2, 3} {
		m, err := NewMasks(p, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := m.values(p)
		if err != nil {
			t.Fatal(err)
		}
		bundles, err := DealMasked(p, 2, fixed.Default(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		srcs := make([]*Source, n)
		for i, b := range bundles {
			if srcs[i], err = b.Expand(p); err != nil {
				t.Fatal(err)
			}
		}
		var kinds []string
		for ri, mat := range srcs[0].mats {
			req := mat.Req
			if req.Kind != KindMatMul {
				continue
			}
			kinds = append(kinds, req.Node+":"+req.String())
			a := &tensor.Dense[uint64]{Shape: req.X, Data: reconstruct(srcs, ri, bilinearA, false)}
			b := &tensor.Dense[uint64]{Shape: req.Y, Data: reconstruct(srcs, ri, bilinearB, false)}
			switch {
			case req.FixedA != "":
				if len(mat.Parts[bilinearA]) != 0 {
					t.Fatalf("%s: material carries an A", req)
				}
				a.Data = vals[req.FixedA]
			case req.FixedB != "":
				b.Data = vals[req.FixedB]
			}
			want, err := req.Bilinear(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(reconstruct(srcs, ri, bilinearC, false), want.Data) {
				t.Fatalf("N=%d %s: C != A·B", n, req)
			}
		}
		want := []string{"left:matmul [3 4] x [4 10] (mask of wl on the left)", "batched:matmul [2 2 3] x [2 3 5]",
			"right:matmul [4 5] x [5 2] (mask of wr)"}
		if !slices.Equal(kinds, want) {
			t.Fatalf("requests %q, want %q", kinds, want)
		}
	}
}
