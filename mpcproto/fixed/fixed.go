// Package fixed encodes real numbers as fixed-point elements of the ring
// Z_2^64: a value v is stored as the two's-complement integer round(v * 2^Frac)
// reduced modulo 2^64. Addition of encodings is the encoding of the sum; a
// product of two encodings carries 2*Frac fractional bits and must be
// truncated by Frac bits (the secure engine does this after every product).
//
// Range: an encoding is an int64, so |v| < 2^(63-Frac) (2^47 with the default
// 16 bits). The secure engine is stricter: a product before truncation must
// stay below 2^62 in absolute value, that is |x*y| < 2^(62-2*Frac) (2^30
// with 16 bits), and every intermediate value below 2^(62-Frac).
package fixed

import (
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// DefaultFrac is the default number of fractional bits.
const DefaultFrac = 16

// MaxFrac is the largest supported number of fractional bits: a product of
// two encodings must leave room below 2^62.
const MaxFrac = 30

// Encoding is a fixed-point format: Frac fractional bits in a 64-bit ring.
type Encoding struct {
	Frac uint
}

// Default returns the default encoding (16 fractional bits).
func Default() Encoding { return Encoding{Frac: DefaultFrac} }

// Validate reports whether the encoding is usable.
func (e Encoding) Validate() error {
	if e.Frac > MaxFrac {
		return fmt.Errorf("fixed: %d fractional bits exceeds the maximum %d", e.Frac, MaxFrac)
	}
	return nil
}

// Scale is 2^Frac, the factor between a value and its encoding.
func (e Encoding) Scale() float64 { return math.Ldexp(1, int(e.Frac)) }

// Limit is the bound on |v| for Encode: values must satisfy |v| < Limit().
func (e Encoding) Limit() float64 { return math.Ldexp(1, 63-int(e.Frac)) }

// One is the encoding of 1.
func (e Encoding) One() uint64 { return 1 << e.Frac }

// EncodeValue encodes one value, rounding to the nearest representable
// number; NaN, infinities and values with |v| >= Limit() are errors.
func (e Encoding) EncodeValue(v float64) (uint64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("fixed: cannot encode %v", v)
	}
	s := math.Round(v * e.Scale())
	if math.Abs(s) >= math.Ldexp(1, 63) {
		return 0, fmt.Errorf("fixed: %g is outside the representable range (|v| < %g with %d fractional bits)",
			v, e.Limit(), e.Frac)
	}
	return uint64(int64(s)), nil
}

// DecodeValue decodes one ring element.
func (e Encoding) DecodeValue(u uint64) float64 {
	return float64(int64(u)) / e.Scale()
}

// Encode encodes every element of x. The error names the first element
// (flat index) that cannot be encoded.
func (e Encoding) Encode(x *tensor.Dense[float64]) (*tensor.Dense[uint64], error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	out := tensor.New[uint64](x.Shape...)
	if len(x.Data) != len(out.Data) {
		return nil, fmt.Errorf("fixed: tensor shape %v holds %d elements, data has %d", x.Shape, len(out.Data), len(x.Data))
	}
	for i, v := range x.Data {
		u, err := e.EncodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out.Data[i] = u
	}
	return out, nil
}

// Decode decodes every element of x.
func (e Encoding) Decode(x *tensor.Dense[uint64]) *tensor.Dense[float64] {
	out := &tensor.Dense[float64]{Shape: append([]int(nil), x.Shape...), Data: make([]float64, len(x.Data))}
	s := e.Scale()
	for i, u := range x.Data {
		out.Data[i] = float64(int64(u)) / s
	}
	return out
}
