package fixed

import (
	"math"
	"strings"
	"testing"
	"testing/quick"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestEncodeDecodeTable(t *testing.T) {
	e := Default()
	tests := []struct {
		v    float64
		want uint64
	}{
		{0, 0},
		{1, 1 << 16},
		{-1, ^uint64(0) - (1 << 16) + 1},
		{0.5, 1 << 15},
		{1022, 1022 << 16},
		{math.Ldexp(1, -17), 1}, // rounds half away from zero
	}
	for _, tc := range tests {
		got, err := e.EncodeValue(tc.v)
		if err != nil || got != tc.want {
			t.Errorf("EncodeValue(%v) = %d, %v; want %d", tc.v, got, err, tc.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	e := Default()
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Ldexp(1, 47), -math.Ldexp(1, 47), 1e300} {
		if _, err := e.EncodeValue(v); err == nil {
			t.Errorf("EncodeValue(%v): want error", v)
		}
	}
	x, _ := tensor.From([]int{3}, []float64{1, 2, math.Inf(1)})
	_, err := e.Encode(x)
	if err == nil || !strings.Contains(err.Error(), "element 2") {
		t.Fatalf("Encode: got %v, want an error naming element 2", err)
	}
	if _, err := (Encoding{Frac: 40}).Encode(x); err == nil {
		t.Fatal("frac 40: want error")
	}
	// the largest value below the limit encodes
	if _, err := e.EncodeValue(math.Ldexp(1, 47) - 1); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip: decoding an encoding is within half a unit in the last place.
func TestRoundTrip(t *testing.T) {
	for _, frac := range []uint{0, 8, 16, 24} {
		e := Encoding{Frac: frac}
		f := func(v float64) bool {
			v = math.Mod(v, 1e6)
			u, err := e.EncodeValue(v)
			if err != nil {
				return false
			}
			return math.Abs(e.DecodeValue(u)-v) <= 0.5/e.Scale()
		}
		if err := quick.Check(f, nil); err != nil {
			t.Errorf("frac %d: %v", frac, err)
		}
	}
}

// TestRingAddition: the ring sum of encodings decodes to the sum of values.
func TestRingAddition(t *testing.T) {
	e := Default()
	f := func(a, b int32) bool {
		x, y := float64(a)/1000, float64(b)/1000
		ux, _ := e.EncodeValue(x)
		uy, _ := e.EncodeValue(y)
		return math.Abs(e.DecodeValue(ux+uy)-(x+y)) <= 1/e.Scale()
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestTensorRoundTrip(t *testing.T) {
	e := Default()
	x, _ := tensor.From([]int{2, 2}, []float64{1.5, -2.25, 1000, -0.0001})
	u, err := e.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	y := e.Decode(u)
	for i := range x.Data {
		if math.Abs(x.Data[i]-y.Data[i]) > 0.5/e.Scale() {
			t.Fatalf("element %d: %v -> %v", i, x.Data[i], y.Data[i])
		}
	}
}
