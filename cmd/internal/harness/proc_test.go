package harness

import (
	"context"
	"errors"
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
