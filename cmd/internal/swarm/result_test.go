package swarm

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		in   []float64
		want Stats
	}{
		{nil, Stats{}},
		{[]float64{7}, Stats{N: 1, Min: 7, P50: 7, P90: 7, Max: 7, Mean: 7}},
		{[]float64{4, 1, 3, 2}, Stats{N: 4, Min: 1, P50: 2, P90: 4, Max: 4, Mean: 2.5}},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, Stats{N: 10, Min: 1, P50: 5, P90: 9, Max: 10, Mean: 5.5}},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Summarize(tt.in); got != tt.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Summarize reordered its input")
			}
		}
	}
}

func TestClassify(t *testing.T) {
	exp := []float64{1022}
	tests := []struct {
		name string
		code int
		out  []float64
		want string
	}{
		{"exact", 0, []float64{1022}, ClassRight},
		{"within tolerance", 0, []float64{1022.0004}, ClassRight},
		{"outside tolerance", 0, []float64{1022.01}, ClassWrong},
		{"exit 0 no output", 0, nil, ClassWrong},
		{"exit 0 too long", 0, []float64{1022, 1}, ClassWrong},
		{"NaN", 0, []float64{math.NaN()}, ClassWrong},
		{"clear failure", 1, nil, ClassFailed},
		{"failure with a stale output is still a failure", 1, []float64{5}, ClassFailed},
	}
	for _, tt := range tests {
		if got := Classify(tt.code, tt.out, exp, 1e-3); got != tt.want {
			t.Errorf("%s: Classify = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// syntheticResult is a made-up result of the given case with three runs.
func syntheticResult(c string) *Result {
	res := &Result{Plan: Plan, Case: c, Seed: 1, Host: ThisHost(), Pass: true}
	for i, n := range []int{10, 20, 50} {
		r := &Run{Nodes: n, Holders: 4, RTTMs: float64(i) * 40, ReadyMs: 100 * float64(n), DiscoverMs: 30 * float64(n), RSSKiB: []int64{40000, 50000, int64(60000 + n)}}
		for q := range 5 {
			class := ClassRight
			if c == CaseChurn && q == 2 {
				class = ClassFailed
			}
			r.Queries = append(r.Queries, Query{Index: q, Mode: "mpc", Class: class, Output: []float64{1022},
				TotalMs: float64(5 + q + i*40), OnlineMs: float64(2 + q), WallMs: float64(200 + q), Rounds: 3})
		}
		r.Finish()
		res.Runs = append(res.Runs, r)
	}
	return res
}

func TestRunFinish(t *testing.T) {
	r := &Run{Queries: []Query{
		{Mode: "mpc", Class: ClassRight, TotalMs: 10, Rounds: 3},
		{Mode: "plain", Class: ClassRight, TotalMs: 2, Rounds: 1},
		{Mode: "mpc", Class: ClassFailed},
		{Mode: "mpc", Class: ClassWrong},
	}, RSSKiB: []int64{1024, 2048}}
	r.Finish()
	if r.Counts != (Counts{Right: 2, Failed: 1, Wrong: 1}) {
		t.Fatalf("Counts = %+v", r.Counts)
	}
	if r.Rounds != 3 {
		t.Fatalf("Rounds = %d, want 3 (the MPC query's)", r.Rounds)
	}
	if r.Latency.N != 1 || r.Latency.Max != 10 || r.Plain.N != 1 || r.Plain.Max != 2 {
		t.Fatalf("Latency = %+v, Plain = %+v; want one right answer each", r.Latency, r.Plain)
	}
	if r.RSS.Max != 2048 {
		t.Fatalf("RSS = %+v", r.RSS)
	}
}

func TestWriteJSONAndTable(t *testing.T) {
	dir := t.TempDir()
	res := syntheticResult(CaseScale)
	path, err := res.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("result.json does not decode: %v", err)
	}
	if len(back.Runs) != 3 || back.Runs[2].Nodes != 50 || back.Runs[0].Counts.Right != 5 {
		t.Fatalf("decoded result lost data: %+v", back.Runs)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if lines := strings.Count(out, "\n"); lines != 5 {
		t.Fatalf("table has %d lines, want header + 3 runs + status:\n%s", lines, out)
	}
	if !strings.Contains(out, "PASS") || !strings.Contains(out, "discover ms") {
		t.Fatalf("table lacks the status or a header:\n%s", out)
	}
	res.Pass, res.Error = false, "boom"
	buf.Reset()
	_ = res.WriteTable(&buf)
	if !strings.Contains(buf.String(), "FAIL: boom") {
		t.Fatalf("failed table does not say why:\n%s", buf.String())
	}
}

func TestWritePlots(t *testing.T) {
	tests := []struct {
		c    string
		want []string
	}{
		{CaseScale, []string{"latency_vs_nodes.png", "rss_vs_nodes.png"}},
		{CaseSeed, []string{"latency_vs_nodes.png", "rss_vs_nodes.png"}},
		{CaseWAN, []string{"latency_vs_rtt.png"}},
		{CaseChurn, []string{"churn_queries.png"}},
	}
	for _, tt := range tests {
		t.Run(tt.c, func(t *testing.T) {
			dir := t.TempDir()
			files, err := WritePlots(syntheticResult(tt.c), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tt.want) {
				t.Fatalf("wrote %v, want %v", files, tt.want)
			}
			for i, f := range files {
				if filepath.Base(f) != tt.want[i] {
					t.Fatalf("wrote %v, want %v", files, tt.want)
				}
				fh, err := os.Open(f)
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(fh)
				fh.Close()
				if err != nil {
					t.Fatalf("%s is not a PNG: %v", f, err)
				}
				if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
					t.Fatalf("%s is %v, too small", f, b)
				}
			}
		})
	}
}

func TestWritePlotsNothingToPlot(t *testing.T) {
	res := &Result{Plan: Plan, Case: CaseWAN, Runs: []*Run{{Nodes: 5}}}
	files, err := WritePlots(res, t.TempDir())
	if err != nil || len(files) != 0 {
		t.Fatalf("WritePlots of a result without answers = %v, %v; want nothing", files, err)
	}
}
