package swarm

import (
	"bytes"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeScenario writes sc as a file and returns its path.
func writeScenario(t *testing.T, sc *Scenario) string {
	t.Helper()
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), sc.Case+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no scenario", nil, ExitUsage, "exactly one SCENARIO"},
		{"two scenarios", []string{"a", "b"}, ExitUsage, "exactly one SCENARIO"},
		{"unknown flag", []string{"--bogus", "seed"}, ExitUsage, "bogus"},
		{"missing scenario", []string{"--repo-root", t.TempDir(), "nope"}, ExitUsage, "nope.json"},
		{"nodes too few", []string{"--repo-root", "../../..", "--nodes", "3", "seed"}, ExitUsage, "holders+1"},
		{"no grid binary", []string{"--repo-root", "../../..", "--grid", "/nonexistent/grid", "seed"}, ExitUsage, "not found"},
		{"help", []string{"-h"}, ExitPass, "usage: grid-swarm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Main(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, errb.String())
			}
		})
	}
}

func TestResolveScenario(t *testing.T) {
	if got := resolveScenario("seed", "/r"); got != "/r/scripts/scenarios/seed.json" {
		t.Fatalf("resolveScenario(seed) = %s", got)
	}
	if got := resolveScenario("x/y.json", "/r"); got != "x/y.json" {
		t.Fatalf("resolveScenario(path) = %s", got)
	}
	if got := findRepoRoot("."); !fileExists(filepath.Join(got, "go.mod")) {
		t.Fatalf("findRepoRoot = %s, no go.mod there", got)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestMainFake runs grid-swarm's command line against the fake grid with
// flags after the scenario, and checks the files and the table it writes.
func TestMainFake(t *testing.T) {
	bin := fakeBin(t)
	path := writeScenario(t, fakeScenario(t, CaseScale))
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main([]string{path, "--grid", bin, "--out", out, "--nodes", "6", "--holders", "3", "--seed", "9"}, &stdout, &stderr)
	if code != ExitPass {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	for _, f := range []string{"result.json", "latency_vs_nodes.png", "rss_vs_nodes.png"} {
		if !fileExists(filepath.Join(out, f)) {
			t.Errorf("no %s in --out", f)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "result.json"))
	var res Result
	if err := json.Unmarshal(b, &res); err != nil || !res.Pass || res.Seed != 9 || len(res.Runs) != 1 || res.Runs[0].Nodes != 6 || res.Runs[0].Holders != 3 {
		t.Fatalf("result.json: %v %s", err, b)
	}
	if !strings.Contains(stdout.String(), "[1022]") || !strings.Contains(stdout.String(), "PASS") {
		t.Fatalf("table lacks the answer or the status:\n%s", stdout.String())
	}

	// --replot redraws from the saved result alone.
	again := t.TempDir()
	var table bytes.Buffer
	if code := Main([]string{"--replot", filepath.Join(out, "result.json"), "--out", again}, &table, &stderr); code != ExitPass {
		t.Fatalf("--replot: exit %d: %s", code, stderr.String())
	}
	if !fileExists(filepath.Join(again, "latency_vs_nodes.png")) || table.String() != stdout.String() {
		t.Fatalf("--replot wrote a different table or no plot:\n%s\nvs\n%s", table.String(), stdout.String())
	}
	if code := Main([]string{"--replot", filepath.Join(again, "none.json")}, &table, &stderr); code != ExitUsage {
		t.Fatalf("--replot of a missing file: exit %d", code)
	}
}

// TestMainInterrupt sends this process a real SIGINT while grid-swarm's
// command line has daemons up: it must stop them all and exit 130.
func TestMainInterrupt(t *testing.T) {
	// Keep a stray SIGINT from killing the test binary outside Main.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGINT)
	defer signal.Stop(guard)

	bin := fakeBin(t)
	sc := fakeScenario(t, CaseScale)
	sc.Instances = []int{6, 7, 8}
	path := writeScenario(t, sc)
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main([]string{"--grid", bin, "--out", t.TempDir(), path}, &stdout, stderr) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stderr.String(), "daemons ready") {
		select {
		case <-deadline:
			t.Fatalf("no daemons ready line:\n%s", stderr.String())
		case code := <-done:
			t.Fatalf("Main exited %d before the interrupt:\n%s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != ExitInterrupted {
			t.Fatalf("exit %d, want %d:\n%s", code, ExitInterrupted, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Main did not return after SIGINT:\n%s", stderr.String())
	}
	if left, err := harness.ProcessesOf(bin); err != nil || len(left) > 0 {
		t.Fatalf("processes left after SIGINT: %v %v", left, err)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("no interrupt message:\n%s", stderr.String())
	}
}
