package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// formatNumber prints a decoded fixed-point value: rounded to 4 decimals
// (the engine's resolution is 2^-16 ≈ 1.5e-5), without trailing zeros.
func formatNumber(v float64) string {
	r := math.Round(v*1e4) / 1e4
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// formatTensor prints data of the given shape as nested lists, e.g.
// [1022] or [[1, 2], [3, 4]]. A scalar prints as a bare number.
func formatTensor(shape []int, data []float64) string {
	if len(shape) == 0 {
		if len(data) == 1 {
			return formatNumber(data[0])
		}
		shape = []int{len(data)}
	}
	var b strings.Builder
	var rec func(dim, off int) int
	rec = func(dim, off int) int {
		b.WriteByte('[')
		for i := 0; i < shape[dim]; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if dim == len(shape)-1 {
				if off < len(data) {
					b.WriteString(formatNumber(data[off]))
				}
				off++
			} else {
				off = rec(dim+1, off)
			}
		}
		b.WriteByte(']')
		return off
	}
	rec(0, 0)
	return b.String()
}

// formatBytes prints a byte count with a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// millis converts a duration to fractional milliseconds for JSON.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// shortID abbreviates a peer ID for tables: its last 8 characters.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// writeOutput prints an inference's output: a classifier's batch (shape
// [N, C], C >= 2) one row per sample with its predicted class (the
// largest score, the first one on a tie), anything else as one nested
// list.
func writeOutput(w io.Writer, shape []int, data []float64) {
	if len(shape) != 2 || shape[1] < 2 || shape[0]*shape[1] != len(data) {
		fmt.Fprintln(w, formatTensor(shape, data))
		return
	}
	n, k := shape[0], shape[1]
	width := len(strconv.Itoa(n - 1))
	for i := range n {
		row := data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		fmt.Fprintf(w, "sample %*d: class %d  %s\n", width, i, best, formatTensor([]int{k}, row))
	}
}
