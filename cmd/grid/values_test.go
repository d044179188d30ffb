package main

import (
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
)

func TestParseValues(t *testing.T) {
	tests := []struct {
		in      string
		want    []float64
		wantErr string
	}{
		{"5,3", []float64{5, 3}, ""},
		{" 0.5 , -1e3,2 ", []float64{0.5, -1000, 2}, ""},
		{"7", []float64{7}, ""},
		{"", nil, "--values is empty"},
		{"1,,2", nil, `item 2 ("")`},
		{"1,two", nil, `item 2 ("two") is not a number`},
		{"Inf", nil, "not a finite number"},
		{"1e400", nil, "is not a number"},
	}
	for _, tt := range tests {
		got, err := parseValues(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseValues(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseValues(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// fitFlat fits a --values list to a model's input shape.
func fitFlat(model string, values []float64, shape []int) (*tensor.Dense[float64], error) {
	in, err := fitInput(model, &tensor.Dense[float64]{Shape: []int{len(values)}, Data: values}, tensorio.Flat, shape)
	return in.X, err
}

func TestFitFlat(t *testing.T) {
	tests := []struct {
		values    int
		shape     []int
		wantShape []int
		wantErr   string
	}{
		{2, []int{2}, []int{2}, ""},
		{3, []int{2}, nil, "expected shape [2] (2 values), got 3 values"},
		{6, []int{2, 3}, []int{2, 3}, ""},
		{64, []int{-1, 64}, []int{1, 64}, ""},
		{128, []int{-1, 64}, []int{2, 64}, ""},
		{100, []int{-1, 64}, nil, "a multiple of 64 values"},
		{0, []int{-1, 2}, nil, "a multiple of 2"},
		{128, []int{-1, 1, 8, 8}, []int{2, 1, 8, 8}, ""},
		{1, []int{}, []int{}, ""},
		{2, []int{}, nil, "expected a scalar"},
		{2, []int{2, -1}, nil, "unusable input shape"},
	}
	for _, tt := range tests {
		x, err := fitFlat("m", make([]float64, tt.values), tt.shape)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("fitFlat(%d, %v) error %v, want %q", tt.values, tt.shape, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(x.Shape, tt.wantShape) {
			t.Errorf("fitFlat(%d, %v) = %v, %v; want shape %v", tt.values, tt.shape, x, err, tt.wantShape)
		}
	}
}

func TestFormatTensor(t *testing.T) {
	tests := []struct {
		shape []int
		data  []float64
		want  string
	}{
		{[]int{1}, []float64{1021.99998}, "[1022]"},
		{[]int{2}, []float64{0.5, -0.00001}, "[0.5, 0]"},
		{[]int{2, 2}, []float64{1, 2, 3, 4}, "[[1, 2], [3, 4]]"},
		{[]int{}, []float64{3.25}, "3.25"},
		{[]int{1, 2, 1}, []float64{-1.23456, 7}, "[[[-1.2346], [7]]]"},
	}
	for _, tt := range tests {
		if got := formatTensor(tt.shape, tt.data); got != tt.want {
			t.Errorf("formatTensor(%v, %v) = %q, want %q", tt.shape, tt.data, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\r\n\n  c  d "); got != "a; b; c d" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestReadInputFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path      string
		shape     []int // the model's input shape
		wantShape []int
		wantErr   string
	}{
		{write("a.json", "[5, 3]"), []int{2}, []int{2}, ""},
		{write("b.json", "[[1, 2], [3, 4]]"), []int{-1, 2}, []int{2, 2}, ""},
		{write("c.json", "[1, 2, 3]"), []int{2}, nil, `wrong input shape for model "m"`},
		{write("d.json", "[1, [2]]"), []int{2}, nil, "input file"},
		{write("e.txt", "1"), []int{1}, nil, "unknown input format"},
		{"../../testdata/digits_sample.npy", []int{-1, 64}, []int{4, 64}, ""},
		{dir + "/missing.json", []int{2}, nil, "does not exist"},
		{dir, []int{2}, nil, "is a directory"},
	}
	for _, tt := range tests {
		x, err := readInputFile(tt.path)
		if err == nil {
			var in tensorio.Input
			in, err = fitInput("m", x, tensorio.File, tt.shape)
			x = in.X
		}
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.path, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(x.Shape, tt.wantShape) {
			t.Errorf("%s: %v, %v; want shape %v", tt.path, x, err, tt.wantShape)
		}
	}
}

func TestModelsTable(t *testing.T) {
	var b strings.Builder
	err := writeModelsTable(&b, []modelView{
		{ID: "digits", Owner: "12D3KooWOwnerOwnerOwner1", Mode: "mpc", Holders: []string{"12D3KooWHolderAAAAAAAA1", "12D3KooWHolderBBBBBBBB2"},
			InputShape: []int{-1, 64}, OutputShape: []int{1, 10}, AllowRemote: true},
		{ID: "private", Owner: "short", Mode: "plain", Holders: []string{"host"}, InputShape: []int{2}, OutputShape: []int{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"digits", "…erOwner1", "2: …AAAAAAA1,…BBBBBBB2", "[N, 64]", "[N, 10]", "yes"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"private", "short", "plain", "1: host", "[2]", "[1]", "no"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row %q lacks %q", lines[2], want)
		}
	}
}

// FuzzParseValues checks that --values parsing never panics, and that what
// it accepts is finite, one number per comma-separated item, and fits a
// shape exactly when the sizes agree.
func FuzzParseValues(f *testing.F) {
	for _, s := range []string{"5,3", "", ",", "1e308,-1e308", "NaN", " 0.5 , 2", "1,2,3,4", "0x1p-2", "+Inf"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, sample int) {
		vs, err := parseValues(s)
		if err != nil {
			return
		}
		if len(vs) != strings.Count(s, ",")+1 {
			t.Fatalf("%q gave %d values", s, len(vs))
		}
		for _, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%q gave non-finite %v", s, v)
			}
		}
		if sample < 1 || sample > 1<<10 {
			return
		}
		x, err := fitFlat("m", vs, []int{-1, sample})
		if (err == nil) != (len(vs)%sample == 0) {
			t.Fatalf("fitFlat(%d values, [-1 %d]) error %v", len(vs), sample, err)
		}
		if err == nil && (x.Shape[0]*sample != len(vs) || len(x.Data) != len(vs)) {
			t.Fatalf("fitFlat shape %v for %d values", x.Shape, len(vs))
		}
	})
}
