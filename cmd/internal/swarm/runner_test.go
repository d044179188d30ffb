package swarm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// runFake runs sc against the fake grid and checks that nothing of it is
// left running afterwards.
func runFake(t *testing.T, ctx context.Context, sc *Scenario, o Options) (*Result, error) {
	t.Helper()
	o.Grid = fakeBin(t)
	if o.Out == "" {
		o.Out = t.TempDir()
	}
	var log bytes.Buffer
	o.Log = &log
	res, err := RunScenario(ctx, sc, "test.json", o)
	if res == nil {
		t.Fatalf("RunScenario returned a nil result (err %v)", err)
	}
	if left, lerr := harness.ProcessesOf(o.Grid); lerr != nil || len(left) > 0 {
		t.Fatalf("processes left: %v (%v)", left, lerr)
	}
	if res.Pass != (err == nil) || (err != nil && res.Error == "") {
		t.Fatalf("result pass=%v error=%q disagrees with err %v", res.Pass, res.Error, err)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("runner log:\n%s", log.String())
	}
	return res, err
}

func TestFakeSeed(t *testing.T) {
	sc := fakeScenario(t, CaseSeed)
	sc.Params.Plain = true
	res, err := runFake(t, context.Background(), sc, Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Runs[0]
	if r.Counts != (Counts{Right: 6}) {
		t.Fatalf("counts %+v, want 6 right (3 mpc + 3 plain)", r.Counts)
	}
	if r.Latency.P50 != 3 || r.Rounds != 2 || r.DiscoverMethod != methodAPI || len(r.ModelHolders) != 4 {
		t.Fatalf("run lost the answers' figures: %+v", r)
	}
	if len(r.RSSKiB) != 5 || r.RSS.Min <= 0 {
		t.Fatalf("RSS sample %v, want 5 positive values", r.RSSKiB)
	}
	// Seeded identities: the same seed gives the same holders.
	again, err := runFake(t, context.Background(), sc, Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(again.Runs[0].ModelHolders, ",") != strings.Join(r.ModelHolders, ",") {
		t.Fatalf("seed 7 gave holders %v then %v", r.ModelHolders, again.Runs[0].ModelHolders)
	}
}

func TestFakeWrongAnswersFail(t *testing.T) {
	t.Setenv(fakeWrongEnv, "1")
	res, err := runFake(t, context.Background(), fakeScenario(t, CaseSeed), Options{Seed: 1})
	if err == nil {
		t.Fatal("wrong answers passed")
	}
	if got := res.Runs[0].Counts.Wrong; got != 3 {
		t.Fatalf("Wrong = %d, want 3", got)
	}
}

func TestFakeChurn(t *testing.T) {
	sc := fakeScenario(t, CaseChurn)
	sc.Params.Queries = 16
	sc.Params.Churn = &Churn{Rate: 0.6, MaxDown: 2, Crash: 0.5, Arrive: 0.3}
	res, err := runFake(t, context.Background(), sc, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Runs[0]
	if r.Counts.Wrong != 0 || r.Counts.Right+r.Counts.Failed != 16 {
		t.Fatalf("counts %+v", r.Counts)
	}
	kinds := map[string]int{}
	for _, e := range r.Events {
		kinds[e.Kind]++
	}
	if kinds["leave"] == 0 || kinds["crash"] == 0 || kinds["join"] == 0 || kinds["arrive"] == 0 {
		t.Fatalf("events by kind %v, want every kind", kinds)
	}
	// Every failure must coincide with a holder being down (the fake fails
	// exactly then), and every query with a holder down must fail.
	holders := map[int]bool{}
	for _, e := range r.Events {
		holders[e.Node] = e.Holder
		if e.Node == 0 {
			t.Fatal("the bootstrap daemon left")
		}
	}
	for _, q := range r.Queries {
		holderDown := false
		for _, i := range q.Down {
			holderDown = holderDown || holders[i]
		}
		if holderDown != (q.Class == ClassFailed) {
			t.Fatalf("query %d: class %s with down %v", q.Index, q.Class, q.Down)
		}
		if len(q.Down) > 2 {
			t.Fatalf("query %d: %d down, max 2", q.Index, len(q.Down))
		}
	}
}

func TestFakeWAN(t *testing.T) {
	res, err := runFake(t, context.Background(), fakeScenario(t, CaseWAN), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || res.Runs[0].RTTMs != 0 || res.Runs[1].RTTMs != 20 {
		t.Fatalf("runs %+v", res.Runs)
	}
}

func TestFakeScaleKeepsLogsRemovesRepos(t *testing.T) {
	out := t.TempDir()
	res, err := runFake(t, context.Background(), fakeScenario(t, CaseScale), Options{Seed: 1, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || res.Runs[1].Nodes != 6 {
		t.Fatalf("runs %+v", res.Runs)
	}
	logs, _ := filepath.Glob(filepath.Join(out, "run1-n6", "node*.log"))
	repos, _ := filepath.Glob(filepath.Join(out, "run1-n6", "node?"))
	clients, _ := filepath.Glob(filepath.Join(out, "run1-n6", "[ou][ws]*r"))
	repos = append(repos, clients...)
	if len(logs) != 6 || len(repos) != 0 {
		t.Fatalf("logs %v repos %v: want 6 logs and no repos", logs, repos)
	}
}

// TestFakeCancel cancels a run midway (what Ctrl-C does in grid-swarm):
// RunScenario returns an error and every daemon is gone.
func TestFakeCancel(t *testing.T) {
	for _, after := range []time.Duration{50 * time.Millisecond, 400 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(after); cancel() }()
		sc := fakeScenario(t, CaseScale)
		sc.Instances = []int{8, 9, 10}
		_, err := runFake(t, ctx, sc, Options{Seed: 1})
		cancel()
		if err == nil {
			t.Fatalf("cancel after %s: run passed", after)
		}
	}
}

// TestFakeDaemonIgnoringSIGTERM: a daemon that does not stop on SIGTERM is
// killed after the grace time and reported.
func TestFakeDaemonIgnoringSIGTERM(t *testing.T) {
	t.Setenv(fakeHangEnv, "1")
	res, err := runFake(t, context.Background(), fakeScenario(t, CaseSeed), Options{Seed: 1, StopTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Runs[0].StopErrors); got != 5 {
		t.Fatalf("StopErrors = %v, want one per daemon", res.Runs[0].StopErrors)
	}
}

func TestRunScenarioBadOptions(t *testing.T) {
	sc := fakeScenario(t, CaseSeed)
	if _, err := RunScenario(context.Background(), sc, "x", Options{}); err == nil {
		t.Fatal("no binary and no output dir accepted")
	}
	sc.Params.ModelFile = filepath.Join(t.TempDir(), "missing.onnx")
	_, err := RunScenario(context.Background(), sc, "x", Options{Grid: os.Args[0], Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "model_file") {
		t.Fatalf("missing model file: %v", err)
	}
}
