package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// decodeInputFile decodes a JSON nested list (provisional until tensorio).
func decodeInputFile(path, ext string) (*tensor.Dense[float64], error) {
	if ext != ".json" {
		return nil, fmt.Errorf("input file %s: .npy is not supported yet", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("input file %s: %w", path, err)
	}
	var shape []int
	var data []float64
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		switch x := v.(type) {
		case float64:
			if depth != len(shape) && len(data) > 0 {
				return fmt.Errorf("ragged nesting")
			}
			data = append(data, x)
			return nil
		case []any:
			if depth == len(shape) {
				shape = append(shape, len(x))
			} else if shape[depth] != len(x) {
				return fmt.Errorf("ragged list")
			}
			for _, e := range x {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("not a number or list")
	}
	if err := walk(v, 0); err != nil {
		return nil, fmt.Errorf("input file %s: %w", path, err)
	}
	return tensor.From(shape, data)
}
