// Package tensor provides dense, row-major tensors generic over their element
// type, so that the plaintext twin (float64) and the secure engine (uint64
// ring shares) share one implementation of every index operation: reshape,
// transpose, padding, im2col and pooling windows.
package tensor

import "fmt"

// Number is the set of element types a Dense tensor holds: float64 for
// plaintext values, uint64 for fixed-point ring elements and their shares.
type Number interface {
	~float64 | ~uint64 | ~int64
}

// Dense is a row-major tensor. Shape may be empty (a scalar, one element).
type Dense[T Number] struct {
	Shape []int
	Data  []T
}

// New returns a zero tensor of the given shape.
func New[T Number](shape ...int) *Dense[T] {
	return &Dense[T]{Shape: append([]int(nil), shape...), Data: make([]T, Size(shape))}
}

// From wraps data in a tensor of the given shape; it fails when the sizes differ.
func From[T Number](shape []int, data []T) (*Dense[T], error) {
	if n := Size(shape); n != len(data) {
		return nil, fmt.Errorf("tensor: shape %v holds %d elements, got %d", shape, n, len(data))
	}
	return &Dense[T]{Shape: append([]int(nil), shape...), Data: data}, nil
}

// Size is the number of elements a shape holds (1 for the empty shape).
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Len is the number of elements of t.
func (t *Dense[T]) Len() int { return len(t.Data) }

// Clone returns a deep copy of t.
func (t *Dense[T]) Clone() *Dense[T] {
	return &Dense[T]{Shape: append([]int(nil), t.Shape...), Data: append([]T(nil), t.Data...)}
}
