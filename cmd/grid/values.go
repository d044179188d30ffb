package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
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
