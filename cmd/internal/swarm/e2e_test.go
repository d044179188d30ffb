package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// TestSeedScenarioEndToEnd is issue 6's "Done when": the seed scenario,
// run through grid-swarm's command line against real `grid daemon`
// processes built from ./cmd/grid, answers 1022 (MPC over 4 holders, and
// plain), passes, and leaves no grid process behind.
func TestSeedScenarioEndToEnd(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := harness.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--grid", bin, "--repo-root", root, "--out", out, "--seed", "1", "seed"}, &stdout, &stderr)
	if left, err := harness.ProcessesOf(bin); err != nil || len(left) > 0 {
		t.Errorf("grid processes left running: %v (%v)", left, err)
	}
	if code != ExitPass {
		t.Fatalf("grid-swarm seed: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Pass || len(res.Runs) != 1 {
		t.Fatalf("result: %s", b)
	}
	r := res.Runs[0]
	if r.Nodes != 5 || len(r.ModelHolders) != 4 {
		t.Fatalf("run has %d nodes and holders %v, want 5 and 4", r.Nodes, r.ModelHolders)
	}
	modes := map[string]int{}
	for _, q := range r.Queries {
		if q.Class != ClassRight || len(q.Output) != 1 || q.Output[0] < 1022-1e-3 || q.Output[0] > 1022+1e-3 {
			t.Fatalf("query %d (%s): %s %v %s", q.Index, q.Mode, q.Class, q.Output, q.Err)
		}
		modes[q.Mode]++
	}
	if modes["mpc"] == 0 || modes["plain"] == 0 || r.Counts.Wrong != 0 {
		t.Fatalf("queries by mode %v, counts %+v", modes, r.Counts)
	}
	if r.Rounds < 1 {
		t.Fatalf("MPC queries report %d rounds", r.Rounds)
	}
	if !strings.Contains(stdout.String(), "[1022]") {
		t.Fatalf("summary table does not show the answer:\n%s", stdout.String())
	}
	t.Logf("summary:\n%s", stdout.String())
}
