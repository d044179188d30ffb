package plan

import (
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestSeed(t *testing.T) {
	p, w := Seed()
	if err := CheckWeights(p, w); err != nil {
		t.Fatal(err)
	}
	y, err := EvalPlain(p, w, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Data) != 1 || y.Data[0] != 1022 || SeedAnswer(5, 3) != 1022 {
		t.Fatalf("seed model on [5, 3] = %v, SeedAnswer %v, want 1022", y.Data, SeedAnswer(5, 3))
	}
}

func TestVerifyHash(t *testing.T) {
	p, _ := Seed()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if h != HashBytes(b) || len(h) != 64 {
		t.Fatalf("Hash %q, HashBytes %q", h, HashBytes(b))
	}
	if err := VerifyHash(b, h); err != nil {
		t.Fatal(err)
	}
	err = VerifyHash(append(b, ' '), h)
	if err == nil || !strings.Contains(err.Error(), "plan hash "+h+" does not match the plan (sha256 ") {
		t.Fatalf("VerifyHash of other bytes: %v", err)
	}
}
