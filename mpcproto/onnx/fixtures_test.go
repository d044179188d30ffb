package onnx

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// digitsTest is testdata/digits_test.json, written by scripts/make_fixtures.py.
type digitsTest struct {
	X            [][]float64            `json:"x"`
	Labels       []int                  `json:"labels"`
	Logits       map[string][][]float64 `json:"logits"`
	Conv13Logits [][]float64            `json:"conv13_logits"`
}

func testdata(name string) string { return filepath.Join("..", "..", "testdata", name) }

func loadDigits(t testing.TB) *digitsTest {
	t.Helper()
	b, err := os.ReadFile(testdata("digits_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d digitsTest
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.X) != 360 || len(d.Labels) != 360 {
		t.Fatalf("digits_test.json has %d samples and %d labels, want 360", len(d.X), len(d.Labels))
	}
	return &d
}

func importFile(t testing.TB, name string) (*plan.Plan, plan.Weights) {
	t.Helper()
	f, err := os.Open(testdata(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, w, err := Import(f)
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
	return p, w
}

// digitsBatch is the held-out set as one batch in the plan's input shape.
func digitsBatch(d *digitsTest, p *plan.Plan) *tensor.Dense[float64] {
	shape := append([]int{len(d.X)}, p.Input.Shape[1:]...)
	x := tensor.New[float64](shape...)
	for i, row := range d.X {
		copy(x.Data[i*64:], row)
	}
	return x
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

// TestSeedFixture: seed.onnx is the seed's model as the seed writes it,
// fc1.matmul(x) + bias with fc1 = [2, 4] and bias = [1000] (a MatMul with
// the weight on the left, then an Add); seed_linear.onnx, its nn.Linear
// variant, is one MatMul with a bias, and so is seed.onnx once the Add
// folds into it (fc1 as the row [1, 2] on the left). Both give 1022 on
// [5, 3].
func TestSeedFixture(t *testing.T) {
	for _, tc := range []struct {
		file string
		ops  []plan.Op
	}{
		{"seed.onnx", []plan.Op{plan.MatMul}},
		{"seed_linear.onnx", []plan.Op{plan.MatMul}},
	} {
		p, w := importFile(t, tc.file)
		if !reflect.DeepEqual(p.Input.Shape, []int{2}) {
			t.Fatalf("%s: input shape %v, want [2]", tc.file, p.Input.Shape)
		}
		var ops []plan.Op
		for _, n := range p.Nodes {
			ops = append(ops, n.Op)
		}
		if !reflect.DeepEqual(ops, tc.ops) {
			t.Fatalf("%s: plan ops %v, want %v: %+v", tc.file, ops, tc.ops, p.Nodes)
		}
		if tc.file == "seed.onnx" {
			mm := p.Nodes[0]
			fc1 := w[mm.Inputs[0]]
			if len(mm.Inputs) != 3 || mm.Inputs[1] != p.Input.Name || !reflect.DeepEqual(fc1.Shape, []int{1, 2}) ||
				!reflect.DeepEqual(fc1.Data, []float64{2, 4}) || !reflect.DeepEqual(w[mm.Inputs[2]].Data, []float64{1000}) {
				t.Fatalf("seed.onnx: MatMul %v is not fc1 [[2 4]] on the left of the input with bias [1000]", mm.Inputs)
			}
		}
		y, err := plan.EvalPlain(p, w, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(y.Shape, []int{1}) || y.Data[0] != 1022 {
			t.Fatalf("%s on [5 3] = %v %v, want [1] [1022]", tc.file, y.Shape, y.Data)
		}
	}
}

// TestDigitsFixturesPlain checks the imported plans' plaintext twin against
// PyTorch's logits on the 360 held-out samples.
func TestDigitsFixturesPlain(t *testing.T) {
	d := loadDigits(t)
	for _, name := range []string{"digits_mlp", "digits_cnn", "digits_cnn_bn", "conv13"} {
		t.Run(name, func(t *testing.T) {
			p, w := importFile(t, name+".onnx")
			if p.Input.Shape[0] != -1 {
				t.Fatalf("input shape %v: batch is not free", p.Input.Shape)
			}
			want := d.Logits[name]
			if name == "conv13" {
				want = d.Conv13Logits
			}
			y, err := plan.EvalPlain(p, w, digitsBatch(d, p))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(y.Shape, []int{360, 10}) {
				t.Fatalf("output shape %v, want [360 10]", y.Shape)
			}
			maxErr := 0.0
			for i := 0; i < 360; i++ {
				row := y.Data[i*10 : (i+1)*10]
				for j := range row {
					maxErr = math.Max(maxErr, math.Abs(row[j]-want[i][j]))
				}
				if argmax(row) != argmax(want[i]) {
					t.Errorf("sample %d: argmax %d, PyTorch %d", i, argmax(row), argmax(want[i]))
				}
			}
			t.Logf("%s: %d nodes, %d weights, max |logit - PyTorch| = %.2g", name, len(p.Nodes), len(p.Weights), maxErr)
			if maxErr > 1e-4 {
				t.Errorf("max logit error %g > 1e-4", maxErr)
			}
		})
	}
}
