package swarm

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// tolerateScenario is a churn scenario for the fake grid with the model
// over 4 holders tolerating 1 down, and a phase beyond tolerance from
// query 12 of 20.
func tolerateScenario(t *testing.T) *Scenario {
	t.Helper()
	sc := fakeScenario(t, CaseChurn)
	sc.Instances = []int{7}
	sc.Params.Tolerate = 1
	sc.Params.Queries = 20
	sc.Params.Churn = &Churn{Rate: 1, MaxDown: 2, Crash: 0.5, BeyondFrom: 12}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestFakeChurnTolerate: with --tolerate 1, the churn never takes more
// than one holder down before beyond_from, every query then answers
// (also with a holder down), and beyond it holders leave until a share is
// uncovered, which fails clearly; the split counts say so.
func TestFakeChurnTolerate(t *testing.T) {
	sc := tolerateScenario(t)
	res, err := runFake(t, context.Background(), sc, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Runs[0]
	ch := r.Churn
	if r.Tolerate != 1 || len(r.ModelShares) != 6 || ch == nil || ch.Tolerate != 1 {
		t.Fatalf("run tolerate %d, shares %v, churn %+v: want 1, 6 shares (CNF of 4 holders)", r.Tolerate, r.ModelShares, ch)
	}
	if ch.Within.Failed != 0 || ch.Within.Wrong != 0 || ch.Beyond.Wrong != 0 || ch.Beyond.Failed == 0 || ch.Uncovered != ch.Beyond.Failed {
		t.Fatalf("split %+v: want no failure within tolerance, failures beyond it exactly when a share is uncovered", ch)
	}
	if ch.Within.Right+ch.Beyond.Right != r.Counts.Right || ch.Within.Right+ch.Within.Failed+ch.Beyond.Right+ch.Beyond.Failed != 20 {
		t.Fatalf("split %+v does not add up to counts %+v of 20 queries", ch, r.Counts)
	}
	if ch.LatencyHolderDown.N == 0 || ch.LatencyAllUp.N == 0 {
		t.Fatalf("latency split all up %+v, holder down %+v: want answers in both", ch.LatencyAllUp, ch.LatencyHolderDown)
	}
	for _, q := range r.Queries {
		if q.Index < sc.Params.Churn.BeyondFrom && q.HoldersDown > 1 {
			t.Fatalf("query %d before beyond_from: %d holders down (down %v)", q.Index, q.HoldersDown, q.Down)
		}
		if (q.Class == ClassFailed) != q.Uncovered || len(q.Down) > 2 {
			t.Fatalf("query %d: class %s, uncovered %v, down %v", q.Index, q.Class, q.Uncovered, q.Down)
		}
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "churn, tolerate 1: <= 1 holders down: ") || !strings.Contains(buf.String(), "a holder down p50") {
		t.Fatalf("summary lacks the churn split:\n%s", buf.String())
	}
}

// TestFakeChurnToleranceBroken: a client that needs every holder of a
// replicated model (the fake told to ignore the replicas) fails queries
// with one holder down, and the run fails for it.
func TestFakeChurnToleranceBroken(t *testing.T) {
	t.Setenv(fakeNoTolerateEnv, "1")
	res, err := runFake(t, context.Background(), tolerateScenario(t), Options{Seed: 3})
	if err == nil || !strings.Contains(err.Error(), "with at most 1 holder(s) down") {
		t.Fatalf("run with failures within tolerance: %v", err)
	}
	if ch := res.Runs[0].Churn; ch == nil || ch.Within.Failed == 0 {
		t.Fatalf("split %+v: want failures within tolerance", ch)
	}
}

func TestShareDaemons(t *testing.T) {
	daemons := map[string]int{"a": 2, "b": 4, "c": 0}
	index := func(id string) int {
		if i, ok := daemons[id]; ok {
			return i
		}
		return -1
	}
	tests := []struct {
		name    string
		holders []string
		shares  [][]int
		want    string
	}{
		{"one share per holder", []string{"a", "b"}, nil, "[[2] [4]]"},
		{"replicated", []string{"a", "b", "c"}, [][]int{{0, 1}, {1, 2}, {0, 2}}, "[[2 4] [4 0] [2 0]]"},
		{"out of range and unknown left out", []string{"a", "zz"}, [][]int{{0, 1, 7, -1}}, "[[2]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(shareDaemons(tt.holders, tt.shares, index)); got != tt.want {
				t.Fatalf("shareDaemons = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestChurnFinishAndPlot: the split of a churn run's queries by holders
// down, its summary lines, and the plot's series.
func TestChurnFinishAndPlot(t *testing.T) {
	r := &Run{Tolerate: 1, Churn: &ChurnResult{Tolerate: 1}, Queries: []Query{
		{Index: 0, Mode: "mpc", Class: ClassRight, TotalMs: 10, WallMs: 100},
		{Index: 1, Mode: "mpc", Class: ClassRight, TotalMs: 110, WallMs: 200, HoldersDown: 1},
		{Index: 2, Mode: "mpc", Class: ClassFailed, HoldersDown: 1, WallMs: 50},
		{Index: 3, Mode: "mpc", Class: ClassFailed, HoldersDown: 2, Uncovered: true, WallMs: 2000},
		{Index: 4, Mode: "mpc", Class: ClassRight, TotalMs: 120, WallMs: 210, HoldersDown: 2},
		{Index: 5, Mode: "mpc", Class: ClassWrong, WallMs: 90},
	}}
	r.Finish()
	ch := r.Churn
	if ch.Within != (Counts{Right: 2, Failed: 1, Wrong: 1}) || ch.Beyond != (Counts{Right: 1, Failed: 1}) || ch.Uncovered != 1 {
		t.Fatalf("split %+v", ch)
	}
	if ch.LatencyAllUp.N != 1 || ch.LatencyAllUp.Max != 10 || ch.LatencyHolderDown.N != 2 || ch.WallHolderDown.Max != 210 {
		t.Fatalf("latency split all up %+v, holder down %+v, wall %+v", ch.LatencyAllUp, ch.LatencyHolderDown, ch.WallHolderDown)
	}
	if err := churnVerdict(r); err == nil || !strings.Contains(err.Error(), "1 wrong") || !strings.Contains(err.Error(), "1 queries failed with at most 1") {
		t.Fatalf("verdict %v: want the wrong answer and the failure within tolerance", err)
	}
	var buf bytes.Buffer
	ch.writeLine(&buf)
	want := "churn, tolerate 1: <= 1 holders down: 2 right, 1 failed, 1 wrong; > 1 down: 1 right, 1 failed, 0 wrong (1 with a share uncovered)\n"
	if !strings.HasPrefix(buf.String(), want) {
		t.Fatalf("summary line %q, want %q", buf.String(), want)
	}
	pf := churnPlots(&Result{Case: CaseChurn, Runs: []*Run{r}})
	var names []string
	for _, s := range pf[0].series {
		names = append(names, s.name)
	}
	got := strings.Join(names, "; ")
	if !strings.HasPrefix(got, "right, all holders up; right, a holder down; clear failure, <= 1 holders down; clear failure, > 1 holders down; wrong") ||
		!strings.Contains(pf[0].title, "tolerate 1") {
		t.Fatalf("plot %q series %s", pf[0].title, got)
	}
}
