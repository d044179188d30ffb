package engine

import (
	"fmt"
	"io"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// The client's part of a session (steps 3 and 4 of "A session, as the
// network layer runs it" in doc.go): encode and split the input, add and
// decode the output shares. The network layer only moves the shares.

// EncodeError is ShareInput's error for an input the encoding cannot
// represent (NaN, an infinity, or beyond its range): bad input, as opposed
// to a failure to draw the shares. Its message is the encoding's.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return e.Err.Error() }

// Unwrap returns the encoding's error.
func (e *EncodeError) Unwrap() error { return e.Err }

// ShareInput encodes x in fixed point and splits it into n additive shares
// (share.Split, seeds from rng), share i for holder i. An unencodable value
// is an *EncodeError naming the element.
func ShareInput(enc fixed.Encoding, x *tensor.Dense[float64], n int, rng io.Reader) ([]*tensor.Dense[uint64], error) {
	ex, err := enc.Encode(x)
	if err != nil {
		return nil, &EncodeError{Err: err}
	}
	shares, err := share.Split(ex, n, rng)
	if err != nil {
		return nil, fmt.Errorf("share input: %w", err)
	}
	return shares, nil
}

// RevealOutput adds the holders' output shares (share.Reconstruct) and
// decodes the sum.
func RevealOutput(enc fixed.Encoding, shares []*tensor.Dense[uint64]) (*tensor.Dense[float64], error) {
	out, err := share.Reconstruct(shares)
	if err != nil {
		return nil, fmt.Errorf("reconstruct output: %w", err)
	}
	return enc.Decode(out), nil
}
