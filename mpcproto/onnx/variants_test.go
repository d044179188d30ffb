package onnx

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// variantCase is one entry of testdata/variants/cases.json.
type variantCase struct {
	X      []float64 `json:"x"`
	XShape []int     `json:"x_shape"`
	Y      []float64 `json:"y"`
	YShape []int     `json:"y_shape"`
}

func loadVariants(t *testing.T) ([]string, map[string]variantCase) {
	t.Helper()
	b, err := os.ReadFile(testdata("variants/cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]variantCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 30 {
		t.Fatalf("only %d variants", len(names))
	}
	return names, cases
}

func maxAbsDiff(t *testing.T, got *tensor.Dense[float64], c variantCase) float64 {
	t.Helper()
	if !reflect.DeepEqual(got.Shape, c.YShape) {
		t.Fatalf("output shape %v, PyTorch %v", got.Shape, c.YShape)
	}
	m := 0.0
	for i := range got.Data {
		m = math.Max(m, math.Abs(got.Data[i]-c.Y[i]))
	}
	return m
}

// TestVariantsPlain imports every variant (opsets 9 to 17, dynamic batch,
// batch fixed to 1 at export, BatchNormalization kept) and compares the
// plaintext twin with PyTorch on the whole batch.
func TestVariantsPlain(t *testing.T) {
	names, cases := loadVariants(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c := cases[name]
			p, w := importFile(t, "variants/"+name)
			if p.Input.Shape[0] != -1 {
				t.Fatalf("input shape %v: batch is not free", p.Input.Shape)
			}
			for _, n := range p.Nodes {
				if strings.HasSuffix(name, "_preserve.onnx") && n.Op == plan.MulConst && strings.Contains(n.Name, "bn") {
					t.Errorf("BatchNormalization %s was not folded", n.Name)
				}
			}
			y, err := plan.EvalPlain(p, w, &tensor.Dense[float64]{Shape: c.XShape, Data: c.X})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(t, y, c); d > 1e-4 {
				t.Errorf("max |y - PyTorch| = %g", d)
			}
		})
	}
}

// TestVariantsSecure evaluates the opset-13 and batch-1 variants securely
// with 3 holders.
func TestVariantsSecure(t *testing.T) {
	names, cases := loadVariants(t)
	for _, name := range names {
		if !strings.Contains(name, "_op13_") && !strings.Contains(name, "_fixed1") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			c := cases[name]
			p, w := importFile(t, "variants/"+name)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			y, _, err := engine.RunLocal(ctx, p, w, &tensor.Dense[float64]{Shape: c.XShape, Data: c.X}, 3)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(t, y, c); d >= 0.02 {
				t.Errorf("max |y - PyTorch| = %g", d)
			}
		})
	}
}
