package engine

import (
	"crypto/rand"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// TestShareRevealRoundTrip: the client's input shares add up to its
// encoding, and RevealOutput of them gives the input back.
func TestShareRevealRoundTrip(t *testing.T) {
	enc := fixed.Default()
	x := &tensor.Dense[float64]{Shape: []int{2, 2}, Data: []float64{5, -3, 0.25, 1e6}}
	for _, n := range []int{2, 3, 5} {
		shares, err := ShareInput(enc, x, n, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != n {
			t.Fatalf("%d shares, want %d", len(shares), n)
		}
		y, err := RevealOutput(enc, shares)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x.Data {
			if math.Abs(y.Data[i]-x.Data[i]) > 1e-4 {
				t.Fatalf("n=%d: revealed %v, want %v", n, y.Data, x.Data)
			}
		}
	}
}

func TestShareRevealErrors(t *testing.T) {
	enc := fixed.Default()
	_, err := ShareInput(enc, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{1, math.NaN()}}, 2, rand.Reader)
	var ee *EncodeError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "element 1") || errors.Unwrap(ee) == nil {
		t.Fatalf("NaN input: %v, want an EncodeError naming element 1", err)
	}
	_, err = ShareInput(enc, &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1}}, 1, rand.Reader)
	if err == nil || errors.As(err, &ee) || !strings.HasPrefix(err.Error(), "share input: ") {
		t.Fatalf("one share: %v, want a share input error", err)
	}
	_, err = RevealOutput(enc, []*tensor.Dense[uint64]{tensor.New[uint64](1)})
	if err == nil || !strings.HasPrefix(err.Error(), "reconstruct output: ") {
		t.Fatalf("one output share: %v, want a reconstruct error", err)
	}
}
