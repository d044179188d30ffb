package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
)

// readInputFile reads an --input file (.json nested lists or
// {"shape", "data"}, or a float32/float64 .npy) through tensorio, with a
// clear error when it is missing.
func readInputFile(path string) (*tensor.Dense[float64], error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("input file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("input file: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("input file %s is a directory", path)
	}
	x, err := tensorio.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("input file: %w", err)
	}
	return x, nil
}

// fitInput shapes an --input tensor to the model's input shape
// (tensorio.Fit: the exact shape, a batch in a free leading dimension, or
// one sample without it); the error names the model and both shapes.
func fitInput(model string, x *tensor.Dense[float64], shape []int) (*tensor.Dense[float64], error) {
	y, err := tensorio.Fit(x, shape)
	if err != nil {
		return nil, fmt.Errorf("wrong input shape for model %q: %w", model, err)
	}
	return y, nil
}
