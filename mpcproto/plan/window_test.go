package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestConvWindow(t *testing.T) {
	a := Attrs{Strides: []int{2, 2}, Pads: []int{1, 0, 1, 2}, Dilations: []int{1, 2}}
	got, err := a.ConvWindow([]int{4, 3, 3, 5})
	want := tensor.Window{Kernel: [2]int{3, 5}, Strides: [2]int{2, 2}, Pads: [4]int{1, 0, 1, 2}, Dilations: [2]int{1, 2}}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := a.ConvWindow([]int{4, 3, 3}); err == nil || !strings.Contains(err.Error(), "want rank 4") {
		t.Fatalf("rank 3 weight: got %v", err)
	}
}

func TestPoolWindow(t *testing.T) {
	got, err := Attrs{Kernel: []int{2, 3}, CeilMode: true}.PoolWindow()
	want := tensor.Window{Kernel: [2]int{2, 3}, Strides: [2]int{1, 1}, Dilations: [2]int{1, 1}, CeilMode: true}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := (Attrs{Kernel: []int{3}}).PoolWindow(); err == nil {
		t.Fatal("one-value kernel: want an error")
	}
}

func TestPoolCounts(t *testing.T) {
	k3 := []int{3, 3}
	tests := []struct {
		name string
		a    Attrs
		h, w int
		want []int
		err  string
	}{
		{"padded, inside only", Attrs{Kernel: k3, Pads: []int{1, 1, 1, 1}}, 3, 3, []int{4, 6, 4, 6, 9, 6, 4, 6, 4}, ""},
		{"padded, pads count", Attrs{Kernel: k3, Pads: []int{1, 1, 1, 1}, CountIncludePad: true}, 3, 3,
			[]int{9, 9, 9, 9, 9, 9, 9, 9, 9}, ""},
		// ceil mode: the last windows reach past the input, where nothing
		// counts even with CountIncludePad (there are no end pads)
		{"ceil mode", Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}, CeilMode: true, CountIncludePad: true}, 3, 3,
			[]int{4, 2, 2, 1}, ""},
		{"begin pads only", Attrs{Kernel: []int{2, 2}, Pads: []int{1, 0, 0, 0}}, 2, 2,
			[]int{2, 4}, ""},
		{"a window in the padding", Attrs{Kernel: []int{1, 1}, Pads: []int{1, 1, 1, 1}}, 2, 2, nil, "entirely in the padding"},
		{"kernel larger than the input", Attrs{Kernel: k3}, 2, 2, nil, "does not fit"},
		{"bad kernel", Attrs{Kernel: []int{3}}, 2, 2, nil, "kernel"},
	}
	for _, tc := range tests {
		got, err := tc.a.PoolCounts(tc.h, tc.w)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
