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

// family is one entry of testdata/families.json (scripts/make_fixtures.py):
// a small faithful member of a torchvision family, an input batch and
// PyTorch's logits.
type family struct {
	File     string         `json:"file"`
	Config   string         `json:"config"`
	X        []float64      `json:"x"`
	XShape   []int          `json:"x_shape"`
	Y        []float64      `json:"y"`
	YShape   []int          `json:"y_shape"`
	OpCounts map[string]int `json:"op_counts"`
}

// pendingFamilies are refused for now, each by the op and node named.
var pendingFamilies = map[string]string{}

// importFamily imports a family, or checks that a pending one is refused
// by name and skips.
func importFamily(t *testing.T, name string, f family) (*plan.Plan, plan.Weights) {
	t.Helper()
	if want, ok := pendingFamilies[name]; ok {
		b, err := os.ReadFile(testdata(f.File))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ImportBytes(b); err == nil || err.Error() != want {
			t.Fatalf("pending family: import error %v, want %q", err, want)
		}
		t.Skip(want)
	}
	return importFile(t, f.File)
}

func loadFamilies(t testing.TB) (map[string]family, []string) {
	t.Helper()
	b, err := os.ReadFile(testdata("families.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fs map[string]family
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(fs))
	for name := range fs {
		names = append(names, name)
	}
	sort.Strings(names)
	return fs, names
}

// sample returns samples [from, to) of the family's input batch and
// PyTorch's logits for them.
func (f family) sample(from, to int) (*tensor.Dense[float64], [][]float64) {
	per := tensor.Size(f.XShape[1:])
	x := &tensor.Dense[float64]{Shape: append([]int{to - from}, f.XShape[1:]...), Data: f.X[from*per : to*per]}
	k := f.YShape[1]
	var want [][]float64
	for i := from; i < to; i++ {
		want = append(want, f.Y[i*k:(i+1)*k])
	}
	return x, want
}

// TestFamiliesPlain imports every family and checks its plaintext twin
// against PyTorch's logits: max |twin - PyTorch| <= 1e-3 · max(1, max
// |logit|), same argmax.
func TestFamiliesPlain(t *testing.T) {
	fs, names := loadFamilies(t)
	for _, name := range names {
		f := fs[name]
		t.Run(name, func(t *testing.T) {
			p, w := importFamily(t, name, f)
			x, want := f.sample(0, f.XShape[0])
			y, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(y.Shape, f.YShape) {
				t.Fatalf("output shape %v, PyTorch %v", y.Shape, f.YShape)
			}
			maxErr, scale := 0.0, 1.0
			for i, row := range want {
				got := y.Data[i*len(row) : (i+1)*len(row)]
				for j, v := range row {
					maxErr = math.Max(maxErr, math.Abs(got[j]-v))
					scale = math.Max(scale, math.Abs(v))
				}
				if argmax(got) != argmax(row) {
					t.Errorf("sample %d: argmax %d, PyTorch %d", i, argmax(got), argmax(row))
				}
			}
			t.Logf("%s: %d plan nodes, %d weights; max |twin - PyTorch| = %.2g (%.2g relative)",
				name, len(p.Nodes), len(p.Weights), maxErr, maxErr/scale)
			if maxErr > 1e-3*scale {
				t.Errorf("max error %.3g > 1e-3 · %.3g", maxErr, scale)
			}
		})
	}
}

// secureFamilyBatch is the number of samples each family runs securely.
const secureFamilyBatch = 1

// TestFamiliesSecure runs every family securely over 3 holders (with
// weight masks, in process) on the first sample(s): the argmax must be
// PyTorch's and every logit within 1% of the sample's logit range.
func TestFamiliesSecure(t *testing.T) {
	fs, names := loadFamilies(t)
	for _, name := range names {
		f := fs[name]
		t.Run(name, func(t *testing.T) {
			p, w := importFamily(t, name, f)
			x, want := f.sample(0, secureFamilyBatch)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			l, err := engine.NewLocal(ctx, p, w, 3, engine.WithWeightMasks())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			y, st, err := l.Infer(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			worst := 0.0
			for i, row := range want {
				got := y.Data[i*len(row) : (i+1)*len(row)]
				lo, hi := slices.Min(row), slices.Max(row)
				for j, v := range row {
					worst = math.Max(worst, math.Abs(got[j]-v)/(hi-lo))
				}
				if argmax(got) != argmax(row) {
					t.Errorf("sample %d: secure argmax %d, PyTorch %d (%v vs %v)", i, argmax(got), argmax(row), got, row)
				}
			}
			t.Logf("%s", fmt.Sprintf("%s: N=3 batch %d: max |secure - PyTorch| = %.2g%% of the logit range; %v (online %v), %d rounds, %.1f MB sent by the busiest party, dealer %.1f MB",
				name, len(want), 100*worst, elapsed.Round(time.Millisecond), st.Online.Round(time.Millisecond), st.Rounds,
				float64(st.BytesSent)/1e6, float64(st.DealerBytes)/1e6))
			if worst > 0.01 {
				t.Errorf("max error %.3g%% of the logit range > 1%%", 100*worst)
			}
		})
	}
}
