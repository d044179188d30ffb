package dealer

import (
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// TestViews: every view reads the parts of its kind's layout, in order.
func TestViews(t *testing.T) {
	sched := []Request{
		{Kind: KindMatMul, X: []int{2, 3}, Y: []int{3, 4}},
		{Kind: KindTrunc, N: 5},
		{Kind: KindSign, N: 70},
		{Kind: KindMax, N: 7, K: 4},
	}
	srcs, err := NewSources(sched, 2, fixed.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := srcs[0].mats
	same := func(a, b []uint64) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }
	tr := ms[0].Triple()
	if !same(tr.A, ms[0].Parts[bilinearA]) || !same(tr.B, ms[0].Parts[bilinearB]) || !same(tr.C, ms[0].Parts[bilinearC]) || tr.AF != nil {
		t.Fatal("triple: wrong parts")
	}
	tp := ms[1].Trunc()
	if !same(tp.R, ms[1].Parts[truncR]) || !same(tp.Shift, ms[1].Parts[truncShift]) || !same(tp.MSB, ms[1].Parts[truncMSB]) {
		t.Fatal("trunc: wrong parts")
	}
	for _, m := range ms[2:] {
		c, rho := m.Comparison(), signRho
		if m.Req.Kind == KindMax {
			rho = maxRho(m.Req.K)
			if len(c.Ands) != len(maxAndLevels(m.Req.K)) || !same(c.Ands[1].UV, m.Parts[maxAnd(1)+2]) {
				t.Fatalf("%s: wrong AND triples", m.Req)
			}
		} else if len(c.Ands) != 0 {
			t.Fatalf("%s: AND triples", m.Req)
		}
		if !same(c.R, m.Parts[signR]) || !same(c.Bits, m.Parts[signBits]) || !same(c.Rho, m.Parts[rho]) ||
			!same(c.RhoArith, m.Parts[rho+1]) || !same(c.A, m.Parts[rho+2]) || !same(c.ARho, m.Parts[rho+3]) {
			t.Fatalf("%s: wrong parts", m.Req)
		}
		for l, lv := range c.Levels {
			base := signLevel(l)
			if lv.Quads != signQuads(l) || !same(lv.Mask(1<<6), m.Parts[base+6]) ||
				!same(lv.Mask(quadSubsets[3]), m.Parts[base+QuadVars+3]) {
				t.Fatalf("%s: level %d: wrong parts", m.Req, l)
			}
			for _, set := range []uint8{0, 1 << QuadVars, 1<<0 | 1<<1} { // none, out of range, in no monomial
				if lv.Mask(set) != nil {
					t.Fatalf("Mask(%b) is not nil", set)
				}
			}
		}
	}
}

func TestMaterialCheck(t *testing.T) {
	req := Request{Kind: KindMatMul, X: []int{2, 3}, Y: []int{3, 4}, FixedB: "w"}
	good := func() *Material {
		return &Material{Req: req, Parts: [][]uint64{make([]uint64, 6), nil, make([]uint64, 8)}}
	}
	if err := good().Check(req); err != nil {
		t.Fatal(err)
	}
	withAF := good()
	withAF.Parts = append(withAF.Parts, make([]uint64, 8))
	if err := withAF.Check(req); err != nil {
		t.Fatal(err)
	}
	if got := withAF.Triple().AF; len(got) != 8 {
		t.Fatalf("AF of %d words", len(got))
	}
	tests := []struct {
		name   string
		mutate func(m *Material) *Material
		want   string
	}{
		{"nil", func(*Material) *Material { return nil }, "too few parts"},
		{"short", func(m *Material) *Material { m.Parts = m.Parts[:2]; return m }, "too few parts"},
		{"other request", func(m *Material) *Material { m.Req.FixedB = ""; return m }, "was dealt for matmul [2 3] x [3 4]"},
		{"part size", func(m *Material) *Material { m.Parts[2] = m.Parts[2][:7]; return m }, "part 2 holds 7 words, want 8"},
		{"precomputed size", func(m *Material) *Material { m.Parts = append(m.Parts, make([]uint64, 3)); return m },
			"precomputed part has the wrong size"},
	}
	for _, tc := range tests {
		if err := tc.mutate(good()).Check(req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := good().Check(Request{Kind: 99}); err == nil || !strings.Contains(err.Error(), "unknown material kind") {
		t.Errorf("unknown kind: got %v", err)
	}
}

// TestPrecompute: with masks, Precompute gives every masked triple the
// party's f(A, F), which Triple returns as AF.
func TestPrecompute(t *testing.T) {
	p := testPlan()
	m, err := NewMasks(p, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundles, err := DealMasked(p, 1, fixed.Default(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := bundles[0].Expand(p)
	if err != nil {
		t.Fatal(err)
	}
	F := map[string]*tensor.Dense[uint64]{}
	for _, w := range p.Weights {
		F[w.Name] = tensor.New[uint64](w.Shape...)
		for i := range F[w.Name].Data {
			F[w.Name].Data[i] = uint64(3*i + 1)
		}
	}
	if err := src.Precompute(F); err != nil {
		t.Fatal(err)
	}
	masked := 0
	for i := range src.mats {
		mat := &src.mats[i]
		tr := mat.Triple()
		if mat.Req.FixedB == "" {
			if tr.AF != nil {
				t.Fatalf("%s: AF without masks", mat.Req)
			}
			continue
		}
		masked++
		want, err := mat.Req.Bilinear(&tensor.Dense[uint64]{Shape: mat.Req.X, Data: tr.A}, F[mat.Req.FixedB])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tr.AF, want.Data) || mat.Check(mat.Req) != nil {
			t.Fatalf("%s: AF is not f(A, F)", mat.Req)
		}
	}
	if masked != 2 {
		t.Fatalf("%d masked triples, want 2", masked)
	}
	delete(F, "w")
	if err := src.Precompute(F); err == nil || !strings.Contains(err.Error(), `no opened mask for weight "w"`) {
		t.Fatalf("missing F: got %v", err)
	}
	F["w"] = tensor.New[uint64](2, 2)
	if err := src.Precompute(F); err == nil || !strings.Contains(err.Error(), "precompute for node fc") {
		t.Fatalf("F of the wrong shape: got %v", err)
	}
}

func TestNewSourcesChecks(t *testing.T) {
	if _, err := NewSources(nil, 1, fixed.Default(), nil); err == nil || !strings.Contains(err.Error(), "1 parties") {
		t.Fatalf("one party: got %v", err)
	}
	if _, err := NewSources(nil, 2, fixed.Encoding{Frac: 99}, nil); err == nil {
		t.Fatal("bad encoding: want an error")
	}
	if _, err := NewSources([]Request{{Kind: KindTrunc, N: -1}}, 2, fixed.Default(), nil); err == nil ||
		!strings.Contains(err.Error(), "negative size") {
		t.Fatalf("bad request: got %v", err)
	}
}
