package plan

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

func TestFinal(t *testing.T) {
	p := &Plan{Version: Version, Input: Value{Name: "x", Shape: []int{-1, 2, 3}}, Output: "y",
		Nodes: []Node{{Name: "s", Op: Sigmoid, Inputs: []string{"x"}, Output: "s"}, {Name: "q", Op: SiLU, Inputs: []string{"s"}, Output: "q"},
			{Name: "t", Op: Sigmoid, Inputs: []string{"q"}, Output: "y"}},
		Final: &Final{Op: FinalSoftmax, Axes: []int{2}}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if ops, approx := p.Summary(); ops != 4 || !slices.Equal(approx, []string{"Sigmoid≈", "SiLU≈", "Softmax (client)"}) {
		t.Fatalf("summary %d %q", ops, approx)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Unmarshal(b)
	if err != nil || q.Final == nil || !slices.Equal(q.Final.Axes, []int{2}) {
		t.Fatalf("round trip: %v, %+v", err, q)
	}
	y := &tensor.Dense[float64]{Shape: []int{1, 2, 3}, Data: []float64{0, 0, math.Log(2), 1000, 0, -1000}}
	if err := p.Finish(y); err != nil {
		t.Fatal(err)
	}
	want := []float64{0.25, 0.25, 0.5, 1, 0, 0}
	for i, v := range y.Data {
		if math.Abs(v-want[i]) > 1e-12 {
			t.Fatalf("softmax %v, want %v", y.Data, want)
		}
	}
	for _, tc := range []struct {
		f    Final
		want string
	}{
		{Final{Op: "Tanh", Axes: []int{1}}, `final op "Tanh" is not Softmax or LogSoftmax`},
		{Final{Op: FinalSoftmax, Axes: []int{1, 3}}, "axes [1 3] are not contiguous"},
		{Final{Op: FinalSoftmax}, "final Softmax: axes []"},
	} {
		p.Final = &tc.f
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.f, err, tc.want)
		}
	}
	p.Final = &Final{Op: FinalLogSoftmax, Axes: []int{2, 3}}
	if _, err := p.Shapes(1); err == nil || !strings.Contains(err.Error(), "out of range for output shape [1 2 3]") {
		t.Errorf("axes beyond the output: %v", err)
	}
}
