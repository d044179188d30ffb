// Package tensorio reads the inputs users give a model: JSON nested lists
// ([[...], ...]), a flat JSON list with a shape, comma-separated values, and
// NumPy .npy files (float32 or float64, little-endian, C order), and fits
// them to a plan's input shape, where a batch is the leading dimension.
//
// Every reader is bounded (MaxBytes, plan.MaxElements, plan.MaxRank), refuses
// non-finite values, and reports what is wrong and where.
package tensorio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// MaxBytes is the largest input file or text the readers accept.
const MaxBytes = 64 << 20

// ReadFile reads an input tensor from a .json or .npy file (by extension).
func ReadFile(path string) (*tensor.Dense[float64], error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var t *tensor.Dense[float64]
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		t, err = ParseJSON(b)
	case ".npy":
		t, err = ParseNPY(b)
	default:
		return nil, fmt.Errorf("read %s: unknown input format %q (want .json or .npy)", path, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return t, nil
}

// ParseJSON reads a tensor from JSON: either nested lists of numbers, whose
// nesting gives the shape ([[1, 2], [3, 4]] is [2 2]; a bare number is a
// scalar), or an object {"shape": [...], "data": [...]} holding a flat list
// in row-major order.
func ParseJSON(b []byte) (*tensor.Dense[float64], error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("json input: %d bytes exceeds the limit of %d", len(b), MaxBytes)
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var flat struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&flat); err != nil {
			return nil, fmt.Errorf("json input: %w", err)
		}
		if dec.More() {
			return nil, errors.New("json input: trailing data")
		}
		if flat.Shape == nil {
			return nil, errors.New(`json input: object has no "shape"`)
		}
		return FromFlat(flat.Data, flat.Shape)
	}
	p := &jsonParser{dec: json.NewDecoder(bytes.NewReader(b))}
	p.dec.UseNumber()
	if err := p.value(0); err != nil {
		return nil, fmt.Errorf("json input: %w", err)
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("json input: trailing data after the tensor")
	}
	return &tensor.Dense[float64]{Shape: append([]int{}, p.shape[:p.rank]...), Data: p.data}, nil
}

// jsonParser walks nested lists token by token, checking that they are
// rectangular as it goes.
type jsonParser struct {
	dec   *json.Decoder
	shape []int // list length at each depth; 0 until found
	rank  int   // depth of the numbers; -1 until the first number
	data  []float64
	path  []int // index at each depth, for error messages
	init  bool
}

func (p *jsonParser) where() string {
	if len(p.path) == 0 {
		return "at the top level"
	}
	s := "at "
	for _, i := range p.path {
		s += fmt.Sprintf("[%d]", i)
	}
	return s
}

func (p *jsonParser) value(depth int) error {
	if !p.init {
		p.rank, p.init = -1, true
		p.shape = make([]int, plan.MaxRank)
	}
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no tensor (empty input)")
		}
		return err
	}
	switch v := tok.(type) {
	case json.Number:
		if p.rank == -1 {
			p.rank = depth
		} else if depth != p.rank {
			return fmt.Errorf("%s: a number where a list of depth %d was expected (lists must be rectangular)", p.where(), p.rank-depth)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("%s: %s is not a finite number", p.where(), v)
		}
		if len(p.data) >= plan.MaxElements {
			return fmt.Errorf("more than %d values", plan.MaxElements)
		}
		p.data = append(p.data, f)
		return nil
	case json.Delim:
		if v != '[' {
			return fmt.Errorf("%s: unexpected %q (want a list or a number)", p.where(), string(v))
		}
		if p.rank != -1 && depth >= p.rank {
			return fmt.Errorf("%s: a list where a number was expected (lists must be rectangular)", p.where())
		}
		if depth >= plan.MaxRank {
			return fmt.Errorf("%s: nesting deeper than %d", p.where(), plan.MaxRank)
		}
		n := 0
		p.path = append(p.path, 0)
		for p.dec.More() {
			p.path[depth] = n
			if err := p.value(depth + 1); err != nil {
				return err
			}
			n++
		}
		p.path = p.path[:depth]
		if _, err := p.dec.Token(); err != nil { // ']'
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s: empty list", p.where())
		}
		switch p.shape[depth] {
		case 0:
			p.shape[depth] = n
		case n:
		default:
			return fmt.Errorf("%s: list of %d values, its neighbours have %d (lists must be rectangular)", p.where(), n, p.shape[depth])
		}
		return nil
	default:
		return fmt.Errorf("%s: unexpected %v (want a list or a number)", p.where(), tok)
	}
}

// FromFlat wraps a flat row-major list of values in a tensor of the given
// shape.
func FromFlat(data []float64, shape []int) (*tensor.Dense[float64], error) {
	if len(shape) > plan.MaxRank {
		return nil, fmt.Errorf("shape %v: rank exceeds %d", shape, plan.MaxRank)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 || d > plan.MaxDim {
			return nil, fmt.Errorf("shape %v: dimension %d out of range", shape, d)
		}
		n *= d
		if n > plan.MaxElements {
			return nil, fmt.Errorf("shape %v holds more than %d values", shape, plan.MaxElements)
		}
	}
	if n != len(data) {
		return nil, fmt.Errorf("shape %v holds %d values, got %d", shape, n, len(data))
	}
	for i, v := range data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("value %d is not finite", i)
		}
	}
	return &tensor.Dense[float64]{Shape: append([]int{}, shape...), Data: append([]float64{}, data...)}, nil
}

// ParseValues reads comma-separated numbers ("5,3" or "5, 3") as a 1-D
// tensor, the form of the CLI's --values.
func ParseValues(s string) (*tensor.Dense[float64], error) {
	if len(s) > MaxBytes {
		return nil, fmt.Errorf("values: %d bytes exceeds the limit of %d", len(s), MaxBytes)
	}
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("values: none given")
	}
	parts := strings.Split(s, ",")
	data := make([]float64, len(parts))
	for i, f := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("values: item %d (%q) is not a finite number", i+1, strings.TrimSpace(f))
		}
		data[i] = v
	}
	return FromFlat(data, []int{len(data)})
}

// ShapeString formats a plan input shape for people: the free batch
// dimension -1 is written N ("[N 64]").
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		if d == -1 {
			parts[i] = "N"
		} else {
			parts[i] = strconv.Itoa(d)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// A Form is what a caller's input is taken to be. Fit accepts a different
// set of shapes for each (rest is the plan's input shape without its free
// batch dimension):
//
//   - Exact, what node.Infer takes: exactly the plan's shape (any batch
//     N >= 1 in a free dimension), or one sample of shape rest;
//   - File, what a user's file holds (grid infer --input): also a flat list
//     of size(rest) values (one sample), rows [N, size(rest)] of flattened
//     samples, and [1, shape...] for a plan without a free dimension;
//   - Flat, a flat list of values (grid infer --values): the plan's size, or
//     any whole number of samples with a free dimension.
type Form int

// The forms of an input.
const (
	Exact Form = iota
	File
	Flat
)

// Input is an input fitted to a plan's input shape.
type Input struct {
	// X is the input as the plan takes it: with a free batch dimension,
	// [Batch, rest...]; otherwise the plan's shape.
	X *tensor.Dense[float64]
	// Batch is the number of samples (1 without a free batch dimension).
	Batch int
	// Batched tells whether the output keeps a batch dimension: the input
	// had one, or was a file or a flat list for a plan with a free batch
	// dimension. An Exact single sample has none.
	Batched bool
}

// ErrUnusableShape is returned by Fit for a plan input shape no input can
// fit (a dimension of 0, or -1 anywhere but first).
var ErrUnusableShape = errors.New("unusable input shape")

// Fit checks x against a plan's input shape (a leading -1 is a free batch
// dimension) and returns it as the plan takes it, accepting the shapes of
// form (see Form). Anything else is an error that shows the expected and the
// given shapes; it wraps ErrUnusableShape when no input fits planInput. A
// Flat x is a rank-1 tensor of the values.
func Fit(x *tensor.Dense[float64], planInput []int, form Form) (Input, error) {
	for i, d := range planInput {
		if d == 0 || d < -1 || (d == -1 && i != 0) {
			return Input{}, fmt.Errorf("%w %v", ErrUnusableShape, planInput)
		}
	}
	switch form {
	case Exact:
		return fitExact(x, planInput)
	case File:
		return fitFile(x, planInput)
	case Flat:
		return fitFlat(x, planInput)
	}
	return Input{}, fmt.Errorf("tensorio: unknown input form %d", form)
}

// free tells whether a plan input shape has a free batch dimension.
func free(planInput []int) bool { return len(planInput) > 0 && planInput[0] == -1 }

// reshaped is x's data under another shape.
func reshaped(x *tensor.Dense[float64], shape ...int) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: shape, Data: x.Data}
}

// batched is the Input of x shaped [N, rest...] for a plan with a free
// batch dimension.
func batched(x *tensor.Dense[float64], keep bool) Input {
	return Input{X: x, Batch: x.Shape[0], Batched: keep}
}

func fitExact(x *tensor.Dense[float64], want []int) (Input, error) {
	if x == nil {
		return Input{}, errors.New("no input")
	}
	if len(x.Data) != tensor.Size(x.Shape) {
		return Input{}, fmt.Errorf("input shape %v holds %d values, got %d", x.Shape, tensor.Size(x.Shape), len(x.Data))
	}
	if !free(want) {
		if !slices.Equal(x.Shape, want) {
			return Input{}, fmt.Errorf("input shape %v, the model expects %v", x.Shape, want)
		}
		return Input{X: x, Batch: 1}, nil
	}
	rest := want[1:]
	switch {
	case slices.Equal(x.Shape, rest):
		return batched(reshaped(x, append([]int{1}, rest...)...), false), nil
	case len(x.Shape) == len(want) && slices.Equal(x.Shape[1:], rest) && x.Shape[0] >= 1:
		return batched(x, true), nil
	}
	return Input{}, fmt.Errorf("input shape %v, the model expects %v or [batch N %s]", x.Shape, rest, dims(rest))
}

func fitFile(x *tensor.Dense[float64], planInput []int) (Input, error) {
	if x == nil {
		return Input{}, errors.New("input is missing")
	}
	for _, d := range x.Shape {
		if d <= 0 {
			return Input{}, fmt.Errorf("input shape %v has an empty dimension", x.Shape)
		}
	}
	if len(x.Data) != tensor.Size(x.Shape) {
		return Input{}, fmt.Errorf("input shape %v holds %d values, got %d", x.Shape, tensor.Size(x.Shape), len(x.Data))
	}
	if !free(planInput) {
		switch {
		case slices.Equal(x.Shape, planInput):
			return Input{X: x, Batch: 1}, nil
		case len(x.Shape) == 1 && len(x.Data) == tensor.Size(planInput),
			len(x.Shape) == len(planInput)+1 && x.Shape[0] == 1 && slices.Equal(x.Shape[1:], planInput):
			return Input{X: reshaped(x, slices.Clone(planInput)...), Batch: 1}, nil
		}
		return Input{}, fmt.Errorf("input shape %v does not fit the model's input shape %s", x.Shape, ShapeString(planInput))
	}
	rest := planInput[1:]
	n := tensor.Size(rest)
	switch {
	case len(x.Shape) == len(planInput) && slices.Equal(x.Shape[1:], rest):
		return batched(x, true), nil
	case slices.Equal(x.Shape, rest), len(x.Shape) == 1 && len(x.Data) == n:
		return batched(reshaped(x, append([]int{1}, rest...)...), true), nil
	case len(rest) > 1 && len(x.Shape) == 2 && x.Shape[1] == n:
		return batched(reshaped(x, append([]int{x.Shape[0]}, rest...)...), true), nil
	}
	return Input{}, fmt.Errorf("input shape %v does not fit the model's input shape %s (one sample is %v; a batch is [N %s])",
		x.Shape, ShapeString(planInput), rest, dims(rest))
}

func fitFlat(x *tensor.Dense[float64], shape []int) (Input, error) {
	if x == nil {
		return Input{}, errors.New("no values")
	}
	values := x.Data
	if len(shape) == 0 {
		if len(values) != 1 {
			return Input{}, fmt.Errorf("expected a scalar (1 value), got %d values", len(values))
		}
		t, err := tensor.From([]int{}, values)
		return Input{X: t, Batch: 1}, err
	}
	if !free(shape) {
		n := tensor.Size(shape)
		if len(values) != n {
			return Input{}, fmt.Errorf("expected shape %s (%d values), got %d values", ShapeString(shape), n, len(values))
		}
		t, err := tensor.From(shape, values)
		return Input{X: t, Batch: 1}, err
	}
	sample := tensor.Size(shape[1:])
	if len(values) == 0 || len(values)%sample != 0 {
		return Input{}, fmt.Errorf("expected shape %s (a multiple of %d values), got %d values", ShapeString(shape), sample, len(values))
	}
	t, err := tensor.From(append([]int{len(values) / sample}, shape[1:]...), values)
	if err != nil {
		return Input{}, err
	}
	return batched(t, true), nil
}

// dims writes a shape's dimensions without brackets: "1 8 8".
func dims(d []int) string { return strings.Trim(fmt.Sprint(d), "[]") }
