package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLoadReduced runs the load program at a reduced size (20 concurrent
// sessions against 4 in-process holders) through its command line, and a
// second time with 40 sessions against a holder limit of 1, far over it:
// every session must end with the exact answer or a clear busy/timeout
// refusal (clients retry busy holders a few times, so how many end busy
// varies), and no session may stay active afterwards.
func TestLoadReduced(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		overLimit bool
	}{
		{"20 sessions", []string{"--sessions", "20"}, false},
		{"over the limit", []string{"--sessions", "40", "--max-sessions", "1", "--clients", "2"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--json", "--holders", "4", "--session-timeout", "20s", "--deadline", "90s"}, tc.args...)
			code := run(args, &stdout, &stderr)
			var rep Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("exit %d, report %q: %v; stderr: %s", code, stdout.String(), err, stderr.String())
			}
			t.Logf("%+v", rep)
			if code != 0 || !rep.Healthy() {
				t.Fatalf("exit %d, counts %v, active after %g, errors %v; stderr: %s", code, rep.Counts, rep.ActiveAfter, rep.Errors, stderr.String())
			}
			total := 0
			for _, n := range rep.Counts {
				total += n
			}
			if total != rep.Sessions || rep.Counts[OK] == 0 && !tc.overLimit {
				t.Fatalf("counts %v for %d sessions", rep.Counts, rep.Sessions)
			}
			if rep.MaxAbsErr > 1e-3 || rep.Counts[OK] > 0 && (rep.P50 <= 0 || rep.P99 < rep.P50) {
				t.Fatalf("max error %g, p50 %v, p99 %v", rep.MaxAbsErr, rep.P50, rep.P99)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	rep := &Report{Counts: map[string]int{}, Elapsed: time.Second}
	summarise(rep, []Session{
		{Input: [2]float64{5, 3}, Outcome: OK, Output: 1022, Latency: 3 * time.Millisecond},
		{Input: [2]float64{1, 1}, Outcome: OK, Output: 1006, Latency: time.Millisecond},
		{Input: [2]float64{1, 1}, Outcome: Wrong, Output: 7, Err: "answer 7"},
		{Outcome: Busy, Err: "busy"},
	})
	if rep.Counts[OK] != 2 || rep.Counts[Wrong] != 1 || rep.Counts[Busy] != 1 || rep.Healthy() {
		t.Fatalf("counts %v healthy %v", rep.Counts, rep.Healthy())
	}
	if rep.P50 != time.Millisecond || rep.P99 != 3*time.Millisecond || rep.Throughput != 2 {
		t.Fatalf("p50 %v p99 %v throughput %v", rep.P50, rep.P99, rep.Throughput)
	}
	if len(rep.Errors) != 2 {
		t.Fatalf("errors %v", rep.Errors)
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}} {
		if got := percentile(d, tc.q); got != tc.want {
			t.Errorf("percentile(%g) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--sessions", "0"}, {"--holders", "1"}, {"--dealer", "bob"}, {"--no-such-flag"},
		{"extra"}, {"--session-timeout", "-1s"}, {"--tolerance", "-1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "grid-load: ") && !strings.Contains(stderr.String(), "flag") {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout.String())
		}
		if strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 && !strings.Contains(args[0], "no-such") {
			t.Errorf("%v: more than one line: %q", args, stderr.String())
		}
	}
}
