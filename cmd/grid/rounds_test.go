package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestRoundsCountedAlike: the demo and grid infer --json count a query's
// rounds the same way, the online phase's only: the demo's one query (the
// first, which opens the weight masks) and two queries of the same model
// with grid infer (the first opens the masks, the second reuses them) all
// report the same number.
func TestRoundsCountedAlike(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	demo, err := runDemo(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if demo.Rounds < 1 {
		t.Fatalf("demo: %d rounds", demo.Rounds)
	}
	env, repo := clientCluster(t, ctx, 2)
	seed := filepath.Join("..", "..", "testdata", "seed.onnx")
	if code, _, stderr := runCLI(t, env, "publish", seed, "--id", "convnet", "--holders", "2", "--repo", repo); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	for i := range 2 {
		code, stdout, stderr := runCLI(t, env, "infer", "convnet", "--values", "5,3", "--json", "--repo", repo)
		var v inferView
		if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil {
			t.Fatalf("infer %d: exit %d, stdout %q, stderr %q", i, code, stdout, stderr)
		}
		if v.Rounds != demo.Rounds {
			t.Errorf("infer %d --json: %d rounds, the demo %d", i, v.Rounds, demo.Rounds)
		}
	}
}
