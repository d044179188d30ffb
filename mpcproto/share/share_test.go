package share

import (
	"bytes"
	"math/bits"
	"slices"
	"strings"
	"testing"
	"testing/quick"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestSplitReconstruct(t *testing.T) {
	f := func(data []uint64, n8 uint8) bool {
		n := 2 + int(n8%5)
		x, _ := tensor.From([]int{len(data)}, data)
		shares, err := Split(x, n, nil)
		if err != nil || len(shares) != n {
			return false
		}
		y, err := ReconstructN(shares, n)
		return err == nil && slices.Equal(x.Data, y.Data) && slices.Equal(x.Shape, y.Shape)
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSplitErrors(t *testing.T) {
	x := tensor.New[uint64](3)
	if _, err := Split(x, 1, nil); err == nil {
		t.Error("n=1: want error")
	}
	if _, err := Split(nil, 2, nil); err == nil {
		t.Error("nil tensor: want error")
	}
	if _, err := Split(&tensor.Dense[uint64]{Shape: []int{4}, Data: make([]uint64, 3)}, 2, nil); err == nil {
		t.Error("inconsistent tensor: want error")
	}
	if _, err := Split(x, 3, bytes.NewReader(make([]byte, 40))); err == nil {
		t.Error("short rng: want error")
	}
}

func TestReconstructErrors(t *testing.T) {
	a, b := tensor.New[uint64](2, 2), tensor.New[uint64](4)
	tests := []struct {
		name   string
		shares []*tensor.Dense[uint64]
		want   string
	}{
		{"one share", []*tensor.Dense[uint64]{a}, "need at least 2"},
		{"shape mismatch", []*tensor.Dense[uint64]{a, b}, "share 1 has shape [4]"},
		{"nil share", []*tensor.Dense[uint64]{a, nil}, "share 1 is nil"},
	}
	for _, tc := range tests {
		_, err := Reconstruct(tc.shares)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ReconstructN([]*tensor.Dense[uint64]{a, a}, 3); err == nil {
		t.Error("ReconstructN count: want error")
	}
}

func TestPRGDeterministicAndBalanced(t *testing.T) {
	var s Seed
	s[0] = 7
	a, b := NewPRG(s).Uint64s(20000), NewPRG(s).Uint64s(20000)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different streams")
	}
	// reading in pieces gives the same stream
	g := NewPRG(s)
	var c []uint64
	for _, n := range []int{1, 1023, 5000, 13976} {
		c = append(c, g.Uint64s(n)...)
	}
	if !slices.Equal(a, c) {
		t.Fatal("chunked reads differ")
	}
	ones := 0
	for _, v := range a {
		ones += bits.OnesCount64(v)
	}
	// 1.28M bits: mean 640000, sd 566; 6 sd
	if d := ones - 640000; d > 3400 || d < -3400 {
		t.Fatalf("bit balance off: %d ones", ones)
	}
	s[0] = 8
	if slices.Equal(NewPRG(s).Uint64s(4), a[:4]) {
		t.Fatal("different seeds, same stream")
	}
}
