package tensorio

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestParseJSON(t *testing.T) {
	tests := []struct {
		in    string
		shape []int
		data  []float64
		err   string
	}{
		{in: `[[1, 2], [3, 4], [5, 6]]`, shape: []int{3, 2}, data: []float64{1, 2, 3, 4, 5, 6}},
		{in: ` [5, 3] `, shape: []int{2}, data: []float64{5, 3}},
		{in: `7.5`, shape: []int{}, data: []float64{7.5}},
		{in: `[[[1e-3]]]`, shape: []int{1, 1, 1}, data: []float64{0.001}},
		{in: `{"shape": [2, 2], "data": [1, 2, 3, 4]}`, shape: []int{2, 2}, data: []float64{1, 2, 3, 4}},
		{in: `{"shape": [3], "data": [1, 2]}`, err: "shape [3] holds 3 values, got 2"},
		{in: `{"shape": [2], "data": [1, 2], "x": 1}`, err: `unknown field "x"`},
		{in: `{"data": [1, 2]}`, err: `object has no "shape"`},
		{in: `[[1, 2], [3]]`, err: "at [1]: list of 1 values, its neighbours have 2"},
		{in: `[[1, 2], 3]`, err: "at [1]: a number where a list of depth 1 was expected"},
		{in: `[1, [2]]`, err: "at [1]: a list where a number was expected"},
		{in: `[]`, err: "empty list"},
		{in: `[[1], []]`, err: "at [1]: empty list"},
		{in: `["a"]`, err: `at [0]: unexpected a`},
		{in: `[1e999]`, err: "1e999 is not a finite number"},
		{in: `[1, 2] [3]`, err: "trailing data"},
		{in: ``, err: "empty input"},
		{in: `[1, 2`, err: "json input"},
		{in: `[[[[[[[[[1]]]]]]]]]`, err: "nesting deeper than 8"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			x, err := ParseJSON([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseJSON(%s) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJSON(%s): %v", tc.in, err)
			}
			if !reflect.DeepEqual(x.Shape, tc.shape) || !reflect.DeepEqual(x.Data, tc.data) {
				t.Fatalf("ParseJSON(%s) = %v %v, want %v %v", tc.in, x.Shape, x.Data, tc.shape, tc.data)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	x, err := ParseValues("5, 3")
	if err != nil || !reflect.DeepEqual(x.Shape, []int{2}) || !reflect.DeepEqual(x.Data, []float64{5, 3}) {
		t.Fatalf("ParseValues = %v, %v", x, err)
	}
	for in, want := range map[string]string{"": "none given", "5,,3": `item 2 ("") is not`, "5,x": `item 2 ("x")`, "NaN": "not a finite number"} {
		if _, err := ParseValues(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseValues(%q) error = %v, want %q", in, err, want)
		}
	}
}

// npy builds a .npy file (format 1.0) with the given header fields.
func npy(descr string, fortran bool, shape []int, body []byte) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	f := "False"
	if fortran {
		f = "True"
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, f, tuple)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	out := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	return append(append(out, h...), body...)
}

func f64s(v ...float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

func TestParseNPY(t *testing.T) {
	x, err := ParseNPY(npy("<f8", false, []int{2, 2}, f64s(1, 2, 3, 4.5)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x.Shape, []int{2, 2}) || !reflect.DeepEqual(x.Data, []float64{1, 2, 3, 4.5}) {
		t.Fatalf("got %v %v", x.Shape, x.Data)
	}
	if x, err := ParseNPY(npy("<f8", false, nil, f64s(7))); err != nil || len(x.Shape) != 0 || x.Data[0] != 7 {
		t.Fatalf("scalar: %v %v", x, err)
	}
	bad := []struct {
		name string
		in   []byte
		want string
	}{
		{"fortran", npy("<f8", true, []int{2}, f64s(1, 2)), "Fortran-order arrays are not supported"},
		{"big endian", npy(">f4", false, []int{1}, make([]byte, 4)), "big-endian dtype >f4"},
		{"int64", npy("<i8", false, []int{1}, make([]byte, 8)), "dtype <i8 is not supported (want float32 <f4 or float64 <f8)"},
		{"short body", npy("<f8", false, []int{3}, f64s(1, 2)), "shape [3] of <f8 needs 24 bytes of data, got 16"},
		{"nan", npy("<f8", false, []int{1}, f64s(math.NaN())), "value 0 is not finite"},
		{"zero dim", npy("<f8", false, []int{0}, nil), "empty dimension"},
		{"magic", []byte("PK\x03\x04 not numpy"), "bad magic"},
		{"truncated", npy("<f8", false, []int{1}, f64s(1))[:20], "truncated header"},
		{"version", append([]byte("\x93NUMPY\x09\x00"), 0, 0), "format version 9.0"},
		{"bad header", append([]byte("\x93NUMPY\x01\x00\x04\x00"), "{'x'"...), "header"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseNPY(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseNPY error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReadFileFixtures reads the numpy-written samples and checks them
// against the same samples in digits_test.json.
func TestReadFileFixtures(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "digits_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		X [][]float64 `json:"x"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for name, shape := range map[string][]int{"digits_sample.npy": {4, 64}, "digits_sample_cnn.npy": {4, 1, 8, 8}} {
		x, err := ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x.Shape, shape) {
			t.Fatalf("%s: shape %v, want %v", name, x.Shape, shape)
		}
		for i := 0; i < 4; i++ {
			if !reflect.DeepEqual(x.Data[i*64:(i+1)*64], d.X[i]) {
				t.Fatalf("%s: sample %d differs from digits_test.json", name, i)
			}
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "in.json")
	if err := os.WriteFile(p, []byte(`[[5, 3]]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if x, err := ReadFile(p); err != nil || !reflect.DeepEqual(x.Shape, []int{1, 2}) {
		t.Fatalf("ReadFile json: %v %v", x, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "in.csv")); err == nil {
		t.Fatal("read a missing .csv")
	}
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte("1,2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(filepath.Join(dir, "in.csv")); err == nil || !strings.Contains(err.Error(), `unknown input format ".csv"`) {
		t.Fatalf("ReadFile csv error = %v", err)
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`[[1, 2], [3, 4]]`, `5`, `{"shape": [2], "data": [1, 2]}`, `[[1], [2, 3]]`, `[[[0.5]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseJSON(b)
		if err != nil {
			return
		}
		if tensor.Size(x.Shape) != len(x.Data) {
			t.Fatalf("shape %v with %d values", x.Shape, len(x.Data))
		}
		for _, v := range x.Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatal("non-finite value accepted")
			}
		}
	})
}

func FuzzParseNPY(f *testing.F) {
	f.Add(npy("<f8", false, []int{2, 2}, f64s(1, 2, 3, 4)))
	f.Add(npy("<f4", false, []int{1}, make([]byte, 4)))
	f.Add(npy("<f8", true, []int{2}, f64s(1, 2)))
	if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "digits_sample.npy")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseNPY(b)
		if err != nil {
			return
		}
		if tensor.Size(x.Shape) != len(x.Data) {
			t.Fatalf("shape %v with %d values", x.Shape, len(x.Data))
		}
	})
}

// TestFit checks each form's shapes, batch and batch flag, and the errors
// that show the expected and the given shapes.
func TestFit(t *testing.T) {
	tests := []struct {
		name    string
		form    Form
		x       []int
		plan    []int
		want    []int
		batch   int
		batched bool
		err     string
	}{
		{"exact fixed", Exact, []int{2}, []int{2}, []int{2}, 1, false, ""},
		{"exact fixed wrong", Exact, []int{3}, []int{2}, nil, 0, false, "input shape [3], the model expects [2]"},
		{"exact fixed batch of one refused", Exact, []int{1, 2}, []int{2}, nil, 0, false, "expects [2]"},
		{"exact one sample", Exact, []int{3}, []int{-1, 3}, []int{1, 3}, 1, false, ""},
		{"exact batch", Exact, []int{5, 3}, []int{-1, 3}, []int{5, 3}, 5, true, ""},
		{"exact wrong", Exact, []int{5, 4}, []int{-1, 3}, nil, 0, false, "input shape [5 4], the model expects [3] or [batch N 3]"},
		{"exact empty batch", Exact, []int{0, 3}, []int{-1, 3}, nil, 0, false, "[batch N 3]"},
		{"seed exact", File, []int{2}, []int{2}, []int{2}, 1, false, ""},
		{"seed batch of one", File, []int{1, 2}, []int{2}, []int{2}, 1, false, ""},
		{"seed wrong", File, []int{3}, []int{2}, nil, 0, false, "input shape [3] does not fit the model's input shape [2]"},
		{"seed batch of two", File, []int{2, 2}, []int{2}, nil, 0, false, "input shape [2 2] does not fit the model's input shape [2]"},
		{"mlp batch", File, []int{5, 64}, []int{-1, 64}, []int{5, 64}, 5, true, ""},
		{"mlp one sample keeps a batch", File, []int{64}, []int{-1, 64}, []int{1, 64}, 1, true, ""},
		{"mlp wrong", File, []int{5, 63}, []int{-1, 64}, nil, 0, false, "input shape [5 63] does not fit the model's input shape [N 64] (one sample is [64]; a batch is [N 64])"},
		{"cnn batch", File, []int{3, 1, 8, 8}, []int{-1, 1, 8, 8}, []int{3, 1, 8, 8}, 3, true, ""},
		{"cnn one image", File, []int{1, 8, 8}, []int{-1, 1, 8, 8}, []int{1, 1, 8, 8}, 1, true, ""},
		{"cnn flat sample", File, []int{64}, []int{-1, 1, 8, 8}, []int{1, 1, 8, 8}, 1, true, ""},
		{"cnn flat rows", File, []int{4, 64}, []int{-1, 1, 8, 8}, []int{4, 1, 8, 8}, 4, true, ""},
		{"cnn wrong", File, []int{4, 8, 8}, []int{-1, 1, 8, 8}, nil, 0, false, "does not fit the model's input shape [N 1 8 8] (one sample is [1 8 8]; a batch is [N 1 8 8])"},
		{"flat fixed", Flat, []int{6}, []int{2, 3}, []int{2, 3}, 1, false, ""},
		{"flat fixed wrong", Flat, []int{3}, []int{2}, nil, 0, false, "expected shape [2] (2 values), got 3 values"},
		{"flat samples", Flat, []int{128}, []int{-1, 64}, []int{2, 64}, 2, true, ""},
		{"flat images", Flat, []int{128}, []int{-1, 1, 8, 8}, []int{2, 1, 8, 8}, 2, true, ""},
		{"flat not a multiple", Flat, []int{100}, []int{-1, 64}, nil, 0, false, "expected shape [N 64] (a multiple of 64 values), got 100 values"},
		{"flat none", Flat, []int{0}, []int{-1, 2}, nil, 0, false, "a multiple of 2"},
		{"flat scalar", Flat, []int{1}, []int{}, []int{}, 1, false, ""},
		{"flat not a scalar", Flat, []int{2}, []int{}, nil, 0, false, "expected a scalar (1 value), got 2 values"},
		{"unusable", Flat, []int{2}, []int{2, -1}, nil, 0, false, "unusable input shape [2 -1]"},
		{"zero dim", Exact, []int{2}, []int{0}, nil, 0, false, "unusable input shape [0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &tensor.Dense[float64]{Shape: tc.x, Data: make([]float64, tensor.Size(tc.x))}
			in, err := Fit(x, tc.plan, tc.form)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Fit error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(in.X.Shape, tc.want) || in.Batch != tc.batch || in.Batched != tc.batched || len(in.X.Data) != len(x.Data) {
				t.Fatalf("Fit = shape %v batch %d batched %v, want %v %d %v", in.X.Shape, in.Batch, in.Batched, tc.want, tc.batch, tc.batched)
			}
		})
	}
	for _, f := range []Form{Exact, File} {
		if _, err := Fit(&tensor.Dense[float64]{Shape: []int{2}, Data: []float64{1}}, []int{2}, f); err == nil || !strings.Contains(err.Error(), "holds 2 values, got 1") {
			t.Fatalf("form %d accepted an inconsistent tensor: %v", f, err)
		}
	}
	if _, err := Fit(&tensor.Dense[float64]{Shape: []int{0, 64}}, []int{-1, 64}, File); err == nil || !strings.Contains(err.Error(), "empty dimension") {
		t.Fatalf("Fit of an empty batch: %v", err)
	}
	if _, err := Fit(&tensor.Dense[float64]{Shape: []int{2}, Data: make([]float64, 2)}, []int{2, -1}, File); !errors.Is(err, ErrUnusableShape) {
		t.Fatalf("unusable shape: %v, want ErrUnusableShape", err)
	}
	for _, f := range []Form{Exact, File, Flat} {
		if _, err := Fit(nil, []int{2}, f); err == nil {
			t.Fatalf("form %d accepted a nil input", f)
		}
	}
	if _, err := Fit(&tensor.Dense[float64]{Shape: []int{2}, Data: make([]float64, 2)}, []int{2}, Form(9)); err == nil {
		t.Fatal("unknown form accepted")
	}
}
