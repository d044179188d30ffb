package node

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// maxTensorElems caps the number of elements of a tensor decoded from the
// wire or the store (2^28 words = 2 GiB).
const maxTensorElems = 1 << 28

// encodeWords packs a word tensor into its wire form.
func encodeWords(name string, t *tensor.Dense[uint64]) *pb.Tensor {
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	data := make([]byte, 8*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint64(data[8*i:], v)
	}
	return &pb.Tensor{Name: name, Shape: shape, Data: data}
}

// encodeFloats packs a float64 tensor as IEEE-754 bit patterns.
func encodeFloats(name string, t *tensor.Dense[float64]) *pb.Tensor {
	w := &tensor.Dense[uint64]{Shape: t.Shape, Data: make([]uint64, len(t.Data))}
	for i, v := range t.Data {
		w.Data[i] = math.Float64bits(v)
	}
	return encodeWords(name, w)
}

// decodeWords unpacks a wire tensor, checking its shape against its data.
func decodeWords(t *pb.Tensor) (*tensor.Dense[uint64], error) {
	if t == nil {
		return nil, fmt.Errorf("tensor missing")
	}
	shape := make([]int, len(t.Shape))
	n := int64(1)
	for i, d := range t.Shape {
		if d < 0 || d > maxTensorElems {
			return nil, fmt.Errorf("tensor %q: dim %d is %d", t.Name, i, d)
		}
		n *= d
		if n > maxTensorElems {
			return nil, fmt.Errorf("tensor %q: shape %v holds over %d elements", t.Name, t.Shape, maxTensorElems)
		}
		shape[i] = int(d)
	}
	if int64(len(t.Data)) != 8*n {
		return nil, fmt.Errorf("tensor %q: shape %v needs %d bytes, got %d", t.Name, t.Shape, 8*n, len(t.Data))
	}
	data := make([]uint64, n)
	for i := range data {
		data[i] = binary.LittleEndian.Uint64(t.Data[8*i:])
	}
	return &tensor.Dense[uint64]{Shape: shape, Data: data}, nil
}

// decodeFloats unpacks a wire tensor of float64 bit patterns; NaN and
// infinities are refused.
func decodeFloats(t *pb.Tensor) (*tensor.Dense[float64], error) {
	w, err := decodeWords(t)
	if err != nil {
		return nil, err
	}
	f := &tensor.Dense[float64]{Shape: w.Shape, Data: make([]float64, len(w.Data))}
	for i, v := range w.Data {
		x := math.Float64frombits(v)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("tensor %q: element %d is %v", t.Name, i, x)
		}
		f.Data[i] = x
	}
	return f, nil
}
