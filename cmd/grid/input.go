package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

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

// fitInput shapes the user's input to the model's input shape: a flat
// --values list (tensorio.Flat: any whole number of samples when the model
// has a batch dimension) or an --input tensor (tensorio.File: the exact
// shape, a batch in a free leading dimension, or one sample without it).
// The error names the model and both shapes.
func fitInput(model string, x *tensor.Dense[float64], form tensorio.Form, shape []int) (tensorio.Input, error) {
	in, err := tensorio.Fit(x, shape, form)
	switch {
	case errors.Is(err, tensorio.ErrUnusableShape):
		return in, fmt.Errorf("model %q has an %w", model, err)
	case err != nil:
		return in, fmt.Errorf("wrong input shape for model %q: %w", model, err)
	}
	return in, nil
}

// goShape matches a shape printed by Go's %v ([5 63], [N 64], [-1 64]).
var goShape = regexp.MustCompile(`\[(?:N|-?[0-9]+)(?: (?:N|-?[0-9]+))+\]`)

// commaShapes prints the shapes in an error message the way grid prints
// them everywhere: [5, 63], [N, 64] (a leading -1 is the free batch, N).
func commaShapes(msg string) string {
	return goShape.ReplaceAllStringFunc(msg, func(s string) string {
		s = strings.ReplaceAll(s, " ", ", ")
		if strings.HasPrefix(s, "[-1, ") {
			s = "[N, " + s[len("[-1, "):]
		}
		return s
	})
}

// readInput reads the input of grid infer: the --values list (a rank-1
// tensor of the values, to fit as tensorio.Flat) or the --input file
// (tensorio.File).
func readInput(values, file string) (*tensor.Dense[float64], tensorio.Form, error) {
	if values != "" {
		flat, err := parseValues(values)
		if err != nil {
			return nil, 0, err
		}
		return &tensor.Dense[float64]{Shape: []int{len(flat)}, Data: flat}, tensorio.Flat, nil
	}
	x, err := readInputFile(file)
	return x, tensorio.File, err
}
