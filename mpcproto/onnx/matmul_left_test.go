package onnx

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// matmulLeftCase is one entry of testdata/matmul_left.json: a W @ x form as
// torch exports it, with an input and PyTorch's output (6 decimals).
type matmulLeftCase struct {
	Expr   string    `json:"expr"`
	X      []float64 `json:"x"`
	XShape []int     `json:"x_shape"`
	Y      []float64 `json:"y"`
	YShape []int     `json:"y_shape"`
}

func loadMatmulLeft(t *testing.T) map[string]matmulLeftCase {
	t.Helper()
	b, err := os.ReadFile(testdata("matmul_left.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]matmulLeftCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("matmul_left.json has %d cases", len(cases))
	}
	return cases
}

// TestMatMulLeftFixtures imports every W @ x form torch exports (1-D·1-D,
// 1-D·2-D, 2-D·1-D, 2-D·2-D, batched, 3-D·3-D, addmm, a column MLP, the
// seed's model with parameters and with plain attributes, nn.Linear) and
// checks the twin and the secure evaluation (N = 3, with and without
// weight masks) against PyTorch's output.
func TestMatMulLeftFixtures(t *testing.T) {
	cases := loadMatmulLeft(t)
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		tc := cases[name]
		t.Run(name, func(t *testing.T) {
			p, w := importFile(t, name)
			x := &tensor.Dense[float64]{Shape: tc.XShape, Data: tc.X}
			check := func(what string, y *tensor.Dense[float64], tol float64) {
				t.Helper()
				if !slices.Equal(y.Shape, tc.YShape) {
					t.Fatalf("%s: output shape %v, PyTorch %v", what, y.Shape, tc.YShape)
				}
				for i, v := range y.Data {
					if math.Abs(v-tc.Y[i]) > tol {
						t.Fatalf("%s: output %d = %v, PyTorch %v", what, i, v, tc.Y[i])
					}
				}
			}
			y, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatal(err)
			}
			check("twin", y, 1e-5)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, masked := range []bool{false, true} {
				var opts []engine.Option
				if masked {
					opts = append(opts, engine.WithWeightMasks())
				}
				y, _, err := engine.RunLocal(ctx, p, w, x, 3, opts...)
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("secure (masks %v)", masked), y, 1e-3)
			}
		})
	}
}
