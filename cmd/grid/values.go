package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
)

// parseValues parses the --values flag: a flat, comma-separated list of
// finite numbers ("5,3", "0.5, -1e3"). Errors name the offending item.
func parseValues(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--values is empty: give comma-separated numbers, e.g. --values 5,3")
	}
	parts := strings.Split(s, ",")
	out := make([]float64, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, fmt.Errorf("--values item %d (%q) is not a number", i+1, p)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--values item %d (%q) is not a finite number", i+1, p)
		}
		out = append(out, v)
	}
	return out, nil
}

// fitFlat shapes flat values to a plan's input shape. A leading -1 in shape
// is the free batch dimension: any whole number of samples fits it. Errors
// state the expected and the given sizes.
func fitFlat(model string, values []float64, shape []int) (*tensor.Dense[float64], error) {
	if len(shape) == 0 {
		if len(values) != 1 {
			return nil, fmt.Errorf("wrong input shape for model %q: expected a scalar (1 value), got %d values", model, len(values))
		}
		return tensor.From([]int{}, values)
	}
	for i, d := range shape {
		if d == 0 || d < -1 || (d == -1 && i != 0) {
			return nil, fmt.Errorf("model %q has an unusable input shape %v", model, shape)
		}
	}
	if shape[0] != -1 {
		n := tensor.Size(shape)
		if len(values) != n {
			return nil, fmt.Errorf("wrong input shape for model %q: expected shape %s (%d values), got %d values", model, tensorio.ShapeString(shape), n, len(values))
		}
		return tensor.From(shape, values)
	}
	sample := tensor.Size(shape[1:])
	if len(values) == 0 || len(values)%sample != 0 {
		return nil, fmt.Errorf("wrong input shape for model %q: expected shape %s (a multiple of %d values), got %d values", model, tensorio.ShapeString(shape), sample, len(values))
	}
	concrete := append([]int{len(values) / sample}, shape[1:]...)
	return tensor.From(concrete, values)
}
