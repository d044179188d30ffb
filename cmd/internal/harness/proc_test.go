package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProc(t *testing.T) {
	ctx := context.Background()
	env := []string{fakeEnv + "=hang"}

	p, err := Start(fakeOpts(t, "ok").Bin, env, "fail")
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait(ctx)
	if err != nil || res.Code != 1 || !strings.Contains(res.Stderr, "failed on purpose") || p.Running() {
		t.Fatalf("fail: %v, %v", res, err)
	}
	if p.Ended.Before(p.Started) {
		t.Fatalf("ended %v before started %v", p.Ended, p.Started)
	}

	p, err = Start(fakeOpts(t, "ok").Bin, env, "daemon")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("a hanging command is not running")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	res, err = p.Wait(short)
	if !errors.Is(err, context.DeadlineExceeded) || p.Running() || res.Code != -1 {
		t.Fatalf("wait past the deadline: %v, %v, running %v", res, err, p.Running())
	}
	p.Kill() // killing an exited command is a no-op

	if _, err := Start("/nonexistent/grid", nil, "version"); err == nil {
		t.Fatal("started a missing binary")
	}
	if _, err := Run(ctx, "/nonexistent/grid", nil, "version"); err == nil {
		t.Fatal("ran a missing binary")
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		ok       bool
	}{
		{"normal", "Name:\tgrid\nVmPeak:\t 9000 kB\nVmRSS:\t   51234 kB\nThreads: 9\n", 51234, true},
		{"no line", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, false},
		{"bad unit", "VmRSS:\t 12 MB\n", 0, false},
		{"bad value", "VmRSS:\t x kB\n", 0, false},
		{"negative", "VmRSS:\t -5 kB\n", 0, false},
	}
	for _, tt := range tests {
		got, err := parseVmRSS([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: parseVmRSS = %d, %v; want %d, ok %v", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add([]byte("VmRSS:\t   51234 kB\n"))
	f.Add([]byte("VmRSS:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseVmRSS(b)
		if err == nil && v < 0 {
			t.Fatalf("negative RSS %d accepted", v)
		}
	})
}

// TestProcessesOfAndRSS starts a child of a copied binary, finds it by its
// executable, reads its RSS, stops it, and finds it gone.
func TestProcessesOfAndRSS(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep binary: %v", err)
	}
	// A private copy, so no other process on the machine runs it.
	bin := t.TempDir() + "/sleeper"
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if pids, err := ProcessesOf(bin); err != nil || len(pids) != 0 {
		t.Fatalf("before start: %v, %v", pids, err)
	}
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var pids []int
	for range 100 { // exec is asynchronous: /proc/PID/exe switches shortly
		if pids, err = ProcessesOf(bin); err == nil && len(pids) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Fatalf("ProcessesOf = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	rss, err := RSSKiB(cmd.Process.Pid)
	if err != nil || rss <= 0 {
		t.Fatalf("RSSKiB = %d, %v", rss, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if pids, err := ProcessesOf(bin); err != nil || len(pids) != 0 {
		t.Fatalf("after stop: %v, %v", pids, err)
	}
	if _, err := RSSKiB(cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), "rss of pid") {
		t.Fatalf("RSSKiB of a gone process: %v", err)
	}
}
