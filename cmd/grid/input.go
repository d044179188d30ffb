package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// maxInputFile caps the --input file size.
const maxInputFile = 256 << 20

// readInputFile reads an --input file: .json or .npy.
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
	if st.Size() > maxInputFile {
		return nil, fmt.Errorf("input file %s is %s, over the %s limit", path, formatBytes(st.Size()), formatBytes(maxInputFile))
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json", ".npy":
		return decodeInputFile(path, ext)
	default:
		return nil, fmt.Errorf("input file %s: unknown format %q (want .json or .npy)", path, ext)
	}
}

// fitInput checks x against the plan's input shape: the exact shape, any
// batch size in a free leading dimension, or one sample without the batch
// dimension (given batch 1). Errors show the expected and given shapes.
func fitInput(model string, x *tensor.Dense[float64], shape []int) (*tensor.Dense[float64], error) {
	free := len(shape) > 0 && shape[0] == -1
	switch {
	case !free && slices.Equal(x.Shape, shape):
		return x, nil
	case free && len(x.Shape) == len(shape) && x.Shape[0] > 0 && slices.Equal(x.Shape[1:], shape[1:]):
		return x, nil
	case free && slices.Equal(x.Shape, shape[1:]):
		return tensor.From(append([]int{1}, x.Shape...), x.Data)
	}
	return nil, fmt.Errorf("wrong input shape for model %q: expected %s, got %v", model, shapeString(shape), x.Shape)
}
