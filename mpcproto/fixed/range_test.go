package fixed

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestSafeRange(t *testing.T) {
	tests := []struct {
		frac uint
		want float64
	}{
		{0, math.Ldexp(1, 63)}, // truncation by 0 bits is the identity: only the ring
		{1, math.Ldexp(1, 60)},
		{8, math.Ldexp(1, 46)},
		{16, math.Ldexp(1, 30)},
		{24, math.Ldexp(1, 14)},
		{MaxFrac, 4},
	}
	for _, tc := range tests {
		e := Encoding{Frac: tc.frac}
		if got := e.SafeRange(); got != tc.want {
			t.Errorf("frac %d: SafeRange %g, want %g", tc.frac, got, tc.want)
		}
		if e.SafeRange() > e.Limit() {
			t.Errorf("frac %d: SafeRange %g above Limit %g", tc.frac, e.SafeRange(), e.Limit())
		}
	}
}

func TestCheckOutput(t *testing.T) {
	e := Default()
	s := e.SafeRange()
	tests := []struct {
		name     string
		data     []float64
		overflow bool
		want     string
	}{
		{"empty", nil, false, ""},
		{"seed", []float64{1022}, false, ""},
		{"at the range", []float64{s, -s}, false, ""},
		{"wrapped seed", []float64{-2294966284}, true,
			"output element 0 is -2.29e+09, beyond the safe range ±1.07e+09: the computation overflowed; scale the input down"},
		{"first of several", []float64{1, -2, 2000001012, -5e9}, true, "output element 2 is 2e+09"},
		{"just beyond", []float64{math.Nextafter(s, math.Inf(1))}, true, "output element 0"},
		{"nan", []float64{0, math.NaN()}, false, "fixed: check output: element 1 is NaN, not a decoded value"},
		{"inf", []float64{math.Inf(-1)}, false, "element 0 is -Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.CheckOutput(&tensor.Dense[float64]{Shape: []int{len(tc.data)}, Data: tc.data})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckOutput: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrOverflow) != tc.overflow {
				t.Fatalf("CheckOutput error %v, want %q (overflow %v)", err, tc.want, tc.overflow)
			}
		})
	}
}

func TestCheckOutputBound(t *testing.T) {
	e := Default()
	y := &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{3, -1.5e9}}
	if err := e.CheckOutputBound(y, 2e9); err != nil {
		t.Errorf("bound 2e9: %v", err)
	}
	if err := e.CheckOutputBound(y, 1e9); !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "element 1 is -1.5e+09, beyond the safe range ±1e+09") {
		t.Errorf("bound 1e9: %v", err)
	}
	for _, b := range []float64{math.NaN(), -1} {
		if err := e.CheckOutputBound(y, b); err == nil || errors.Is(err, ErrOverflow) {
			t.Errorf("bound %v: error %v, want an invalid-bound error", b, err)
		}
	}
	if err := e.CheckOutput(nil); err == nil {
		t.Error("nil tensor: want an error")
	}
}
