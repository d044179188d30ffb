// Package share implements additive N-party secret sharing over Z_2^64: a
// value x is split into shares x_0, ..., x_{N-1} with x = sum x_i mod 2^64.
// Any N-1 shares are uniformly distributed and independent of x. Shares of
// parties 0..N-2 are the keystreams of PRGs keyed by fresh seeds (AES-CTR,
// see PRG); the last share is the correction x - sum of the others.
package share

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// NewSeed reads a fresh seed from rng (crypto/rand when rng is nil).
func NewSeed(rng io.Reader) (Seed, error) {
	var s Seed
	if rng == nil {
		rng = rand.Reader
	}
	if _, err := io.ReadFull(rng, s[:]); err != nil {
		return s, fmt.Errorf("share: read seed: %w", err)
	}
	return s, nil
}

// Split splits x into n >= 2 additive shares. rng supplies the seeds and
// must be cryptographically secure; nil means crypto/rand.
func Split(x *tensor.Dense[uint64], n int, rng io.Reader) ([]*tensor.Dense[uint64], error) {
	if n < 2 {
		return nil, fmt.Errorf("share: split into %d shares: need at least 2", n)
	}
	if x == nil {
		return nil, fmt.Errorf("share: split of a nil tensor")
	}
	if tensor.Size(x.Shape) != len(x.Data) {
		return nil, fmt.Errorf("share: tensor shape %v holds %d elements, data has %d", x.Shape, tensor.Size(x.Shape), len(x.Data))
	}
	shares := make([]*tensor.Dense[uint64], n)
	last := x.Clone()
	for i := range n - 1 {
		seed, err := NewSeed(rng)
		if err != nil {
			return nil, err
		}
		s := tensor.New[uint64](x.Shape...)
		NewPRG(seed).Fill(s.Data)
		for j, v := range s.Data {
			last.Data[j] -= v
		}
		shares[i] = s
	}
	shares[n-1] = last
	return shares, nil
}

// Reconstruct adds the shares. It fails on fewer than two shares, a nil
// share or shares of different shapes.
func Reconstruct(shares []*tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("share: reconstruct from %d shares: need at least 2", len(shares))
	}
	for i, s := range shares {
		if s == nil {
			return nil, fmt.Errorf("share: share %d is nil", i)
		}
		if !slices.Equal(s.Shape, shares[0].Shape) {
			return nil, fmt.Errorf("share: share %d has shape %v, share 0 has %v", i, s.Shape, shares[0].Shape)
		}
		if len(s.Data) != tensor.Size(s.Shape) {
			return nil, fmt.Errorf("share: share %d: shape %v holds %d elements, data has %d", i, s.Shape, tensor.Size(s.Shape), len(s.Data))
		}
	}
	out := shares[0].Clone()
	for _, s := range shares[1:] {
		for j, v := range s.Data {
			out.Data[j] += v
		}
	}
	return out, nil
}

// ReconstructN is Reconstruct that also checks there are exactly n shares.
func ReconstructN(shares []*tensor.Dense[uint64], n int) (*tensor.Dense[uint64], error) {
	if len(shares) != n {
		return nil, fmt.Errorf("share: got %d shares, want %d", len(shares), n)
	}
	return Reconstruct(shares)
}
