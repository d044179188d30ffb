package fixed

import (
	"errors"
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// ErrOverflow marks a decoded result that proves the fixed-point computation
// wrapped around: a correct result can never have that magnitude.
var ErrOverflow = errors.New("the computation overflowed")

// SafeRange is the largest magnitude, in real terms, that a value may have
// when the secure engine truncates it: 2^(62-2*Frac), 2^30 (about 1.07e9)
// with the default 16 fractional bits, 4 with MaxFrac.
//
// Every product (MatMul, Conv, Mul, a MulConst by a non-integer, the sums of
// AveragePool and GlobalAveragePool) carries 2*Frac fractional bits until
// the engine truncates it, and the truncation adds 2^62 to map the product
// into [0, 2^63) before opening it masked: it is correct when the product,
// bias included, satisfies -2^62 <= z <= 2^62 as a ring integer, that is
// |Σ w·x + b| <= 2^(62-2*Frac) in real terms. Beyond, the result is wrong by
// a multiple of 4*SafeRange (2^(64-2*Frac), about 4.29e9 with 16 bits),
// depending on the random mask: a product of 2e9 decodes as 2e9 or as
// 2e9 - 4.29e9. With Frac = 0 the truncation is the identity and only the
// ring bound applies: SafeRange is Limit, 2^63.
//
// This is far below Limit (2^(63-Frac), 2^47 with 16 bits), the bound Encode
// enforces: an input that encodes may still overflow the first product. The
// values that are never truncated (inputs, sums, ReLU and MaxPool operands)
// only need |v| < Limit, MaxPool's pairwise differences included.
func (e Encoding) SafeRange() float64 {
	if e.Frac == 0 {
		return e.Limit()
	}
	return math.Ldexp(1, 62-2*int(e.Frac))
}

// CheckOutput checks a decoded result of the secure engine against
// SafeRange: it returns an error wrapping ErrOverflow that names the first
// element whose magnitude exceeds SafeRange, else nil ("output element 0 is
// -2.29e+09, beyond the safe range ±1.07e+09: the computation overflowed;
// scale the input down"). A non-finite element, which no decoding produces,
// is an error too (not ErrOverflow).
//
// It is exact for a plan whose output is a truncated product, possibly
// followed by Relu, MaxPool, Pad or reshapes (MLPs and CNNs ending in a
// linear layer): such a result is at most SafeRange when correct, so a
// larger one proves an overflow. For an output that adds something after
// its last product (an Add node, a MulConst by an integer), use
// CheckOutputBound with a bound on the correct output (plan.RangeEstimate's
// OutputLimit).
//
// A result within the range proves nothing: the last truncation's error is
// always visible (it moves a value between SafeRange and 3*SafeRange by
// 4*SafeRange), but a wrapped value can land inside the range when the true
// value exceeds 3*SafeRange, and an earlier overflow can be hidden by what
// follows (a ReLU zeroes a value wrapped to the negative side). Only inputs
// within the plan's safe input range guarantee a correct result.
func (e Encoding) CheckOutput(t *tensor.Dense[float64]) error {
	return e.CheckOutputBound(t, e.SafeRange())
}

// CheckOutputBound is CheckOutput against a caller's bound on the magnitude
// of a correct output instead of SafeRange.
func (e Encoding) CheckOutputBound(t *tensor.Dense[float64], bound float64) error {
	if t == nil {
		return errors.New("fixed: check output: nil tensor")
	}
	if math.IsNaN(bound) || bound < 0 {
		return fmt.Errorf("fixed: check output: invalid bound %v", bound)
	}
	for i, v := range t.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("fixed: check output: element %d is %v, not a decoded value", i, v)
		}
		if math.Abs(v) > bound {
			return fmt.Errorf("output element %d is %.3g, beyond the safe range ±%.3g: %w; scale the input down",
				i, v, bound, ErrOverflow)
		}
	}
	return nil
}
