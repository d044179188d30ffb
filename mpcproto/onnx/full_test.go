package onnx

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// fullFamily is an entry of full.json (make_fixtures.py --full DIR): a
// full-size torchvision model at 64x64 with PyTorch's logits and its own
// single-thread CPU time.
type fullFamily struct {
	family
	TorchMS map[string]float64 `json:"torch_ms"`
	Params  int                `json:"params"`
}

// TestFullFamilies runs the full-size models of GRID_FULL (a directory
// written by scripts/make_fixtures.py --full; skipped when unset): each
// imports, its twin matches PyTorch, and one secure inference (batch 1,
// N = 3, weight masks, in process) agrees with PyTorch's argmax within 1%
// of the logit range. It logs the figures of the note: online and total
// time, rounds, bytes per party, dealer bytes, the heap's peak, the
// twin's time and PyTorch's, and the ratios.
func TestFullFamilies(t *testing.T) {
	dir, fs := readFull(t)
	for _, name := range []string{"resnet18", "mobilenet_v2", "squeezenet1_1"} {
		f, ok := fs[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, f.File))
			if err != nil {
				t.Fatal(err)
			}
			p, w, err := ImportBytes(raw)
			if err != nil {
				t.Fatal(err)
			}
			x, want := f.sample(0, 1)
			start := time.Now()
			y, err := plan.EvalPlain(p, w, x)
			if err != nil {
				t.Fatal(err)
			}
			twin := time.Since(start)
			twinErr := 0.0
			for j, v := range want[0] {
				twinErr = math.Max(twinErr, math.Abs(y.Data[j]-v))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			peak, stop := heapPeak()
			l, err := engine.NewLocal(ctx, p, w, 3, engine.WithWeightMasks())
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			peak.Store(0)
			start = time.Now()
			got, st, err := l.Infer(ctx, x)
			total := time.Since(start)
			stop()
			if err != nil {
				t.Fatal(err)
			}
			row := want[0]
			lo, hi := slices.Min(row), slices.Max(row)
			worst := 0.0
			for j, v := range row {
				worst = math.Max(worst, math.Abs(got.Data[j]-v)/(hi-lo))
			}
			if argmax(got.Data) != argmax(row) {
				t.Errorf("secure argmax %d, PyTorch %d", argmax(got.Data), argmax(row))
			}
			if worst > 0.01 {
				t.Errorf("max error %.3g%% of the logit range > 1%%", 100*worst)
			}
			torch := f.TorchMS["batch1"]
			t.Logf("%s (%d params, %d plan nodes): twin %v (max |twin - PyTorch| %.2g), PyTorch %.1f ms; secure N=3 batch 1: total %v, online %v, offline %v, dealer %v; %d rounds, %.1f MB sent per party (busiest), dealer %.1f MB (all bundles), setup %.1f MB per party; heap peak %.0f MB (3 parties, dealer and client in one process); error %.3g%% of the logit range; secure/twin %.0fx, secure/PyTorch %.0fx",
				name, f.Params, len(p.Nodes), twin.Round(time.Millisecond), twinErr, torch,
				total.Round(time.Millisecond), st.Online.Round(time.Millisecond), st.Offline.Round(time.Millisecond), st.Dealer.Round(time.Millisecond),
				st.Rounds, float64(st.BytesSent)/1e6, float64(st.DealerBytes)/1e6, float64(l.Setup.BytesSent)/1e6,
				float64(peak.Load())/1e6, 100*worst, float64(total)/float64(twin), float64(total)/1e6/torch)
		})
	}
}
