package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// TestEndToEnd runs real grid processes on loopback: 5 daemons, a client
// repo, the seed model published over 4 holders, queried in MPC and plain
// mode, the error cases, a late joiner that catches up, and a restart of
// every daemon from its repo dir (shares persisted).
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real processes; skipped with -short")
	}
	dir := t.TempDir()
	// Building may wait for CPU behind other packages' tests; it has its
	// own bound, and the processes' 80 s start after it.
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	start := time.Now()
	bin, err := harness.Build(bctx, dir)
	bcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built grid in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	opts := harness.Options{Bin: bin, ReadyTimeout: 20 * time.Second, StopTimeout: 10 * time.Second}
	start = time.Now()
	s, err := harness.NewSwarm(ctx, opts, filepath.Join(dir, "swarm"), harness.SwarmConfig{N: 5, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5 daemons up and connected in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(s.Close)
	defer func() {
		if t.Failed() {
			for i, r := range s.Repos {
				if b, err := os.ReadFile(r + ".log"); err == nil {
					t.Logf("daemon %d log (tail):\n%s", i, tail(string(b), 3000))
				}
			}
		}
	}()

	client := filepath.Join(dir, "client")
	if _, err := harness.Init(ctx, bin, client); err != nil {
		t.Fatal(err)
	}
	env := []string{"GRID_PATH=" + client, "GRID_BOOTSTRAP=" + s.Bootstrap()}
	grid := func(args ...string) harness.Result {
		t.Helper()
		start := time.Now()
		res, err := harness.Run(ctx, bin, env, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("grid %s: exit %d in %v", strings.Join(args, " "), res.Code, time.Since(start).Round(time.Millisecond))
		return res
	}
	ok := func(args ...string) harness.Result {
		t.Helper()
		res := grid(args...)
		if res.Code != 0 {
			t.Fatalf("%v", res)
		}
		return res
	}
	fails := func(code int, want string, args ...string) {
		t.Helper()
		res := grid(args...)
		if res.Code != code || res.Stdout != "" || !strings.HasPrefix(res.Stderr, "grid: ") ||
			strings.Count(res.Stderr, "\n") != 1 || !strings.Contains(res.Stderr, want) {
			t.Errorf("want exit %d and one line holding %q; got %v", code, want, res)
		}
	}
	seed := filepath.Join("..", "..", "testdata", "seed.onnx")

	// The daemon's API answers grid id and grid peers.
	var id struct {
		ID string `json:"id"`
	}
	decode(t, ok("id", "--repo", s.Repos[0], "--json"), &id)
	if id.ID != s.IDs[0] {
		t.Errorf("grid id = %q, want %q", id.ID, s.IDs[0])
	}
	var peers struct {
		Peers []struct{ ID string } `json:"peers"`
	}
	decode(t, ok("peers", "--repo", s.Repos[0], "--json"), &peers)
	if len(peers.Peers) < 4 {
		t.Errorf("daemon 0 sees %d peers, want >= 4", len(peers.Peers))
	}

	// Publish over 4 holders; models lists it.
	var pub modelView
	decode(t, ok("publish", seed, "--id", "convnet", "--holders", "4", "--json"), &pub)
	if pub.ID != "convnet" || pub.Mode != "mpc" || len(pub.Holders) != 4 {
		t.Fatalf("publish answered %+v", pub)
	}
	var models []modelView
	decode(t, ok("models", "--json"), &models)
	if m := findModel(models, "convnet"); m == nil || len(m.Holders) != 4 || !equalInts(m.InputShape, []int{2}) || m.Owner == "" {
		t.Fatalf("models --json = %+v, want convnet over 4 holders with input [2]", models)
	}

	// Private query: 1022, with and without a dealer of the network.
	checkInfer(t, ok("infer", "convnet", "--values", "5,3", "--json"), "convnet", 1022)
	checkInfer(t, ok("infer", "convnet", "--values", "5,3", "--dealer", "self", "--json"), "convnet", 1022)
	// Trust: the owner chose the dealers (the one daemon that is not a
	// holder); another user queries through it, and may neither deal
	// itself nor pick a dealer the manifest does not name.
	var dealers struct {
		Dealers []string `json:"dealers"`
	}
	decode(t, ok("dealers", "convnet", "--json"), &dealers)
	if len(dealers.Dealers) != 1 || slices.Contains(pub.Holders, dealers.Dealers[0]) {
		t.Fatalf("dealers %v, want the one daemon that is not a holder (holders %v)", dealers.Dealers, pub.Holders)
	}
	userRepo := filepath.Join(dir, "user")
	if _, err := harness.Init(ctx, bin, userRepo); err != nil {
		t.Fatal(err)
	}
	user := func(args ...string) []string { return append(args, "--repo", userRepo) }
	checkInfer(t, ok(user("infer", "convnet", "--values", "5,3", "--json")...), "convnet", 1022)
	fails(2, "only the owner", user("infer", "convnet", "--values", "5,3", "--dealer", "self")...)
	fails(2, "is not one model", user("infer", "convnet", "--values", "5,3", "--dealer", pub.Holders[0])...)
	fails(1, "not the model's owner", user("dealers", "convnet", "--set", "none")...)
	// Range safety: a wrapped result is an error, never a wrong number;
	// a value beyond the owner's declared range is refused.
	fails(1, "overflowed", "infer", "convnet", "--values", "1e9,3")
	ok("publish", seed, "--id", "convnet-ranged", "--holders", "2", "--input-range", "100")
	fails(2, "outside the range", "infer", "convnet-ranged", "--values", "1000,3")
	inputFile := filepath.Join(dir, "x.json")
	if err := os.WriteFile(inputFile, []byte("[5, 3]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := ok("infer", "convnet", "--input", inputFile); strings.TrimSpace(res.Stdout) != "[1022]" {
		t.Errorf("infer text output %q, want [1022]", res.Stdout)
	}

	// Plain mode.
	ok("publish", seed, "--id", "convnet-plain", "--plain")
	checkInfer(t, ok("infer", "convnet-plain", "--values", "5,3", "--plain", "--json"), "convnet-plain", 1022)
	fails(2, "add --plain", "infer", "convnet-plain", "--values", "5,3")

	// Refusals and errors.
	ok("publish", seed, "--id", "convnet-private", "--holders", "2", "--no-remote-inference")
	fails(1, "remote inference disabled", "infer", "convnet-private", "--values", "5,3")
	fails(1, "unknown model", "infer", "nosuchmodel", "--values", "5,3")
	if res := grid("infer", "convnett", "--values", "5,3"); res.Code != 1 || res.Stderr !=
		`grid: unknown model "convnett": no such model on the network; did you mean "convnet"? (see "grid models")`+"\n" {
		t.Errorf("near-miss model id: %v", res)
	}
	// A classifier's batch: one row per sample with its predicted class.
	ok("publish", filepath.Join("..", "..", "testdata", "digits_mlp.onnx"), "--id", "digits", "--holders", "3")
	res := ok("infer", "digits", "--input", filepath.Join("..", "..", "testdata", "digits_sample.npy"))
	rows := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	if len(rows) != 4 || !strings.HasPrefix(rows[0], "sample 0: class ") || !strings.HasPrefix(rows[3], "sample 3: class ") {
		t.Errorf("digits batch output %q, want 4 rows \"sample I: class K  [...]\"", res.Stdout)
	}
	fails(2, "wrong input shape", "infer", "convnet", "--values", "5,3,1")
	fails(2, "unknown flag", "infer", "convnet", "--valuez", "5,3")
	fails(2, "does not exist", "publish", filepath.Join(dir, "missing.onnx"), "--id", "m")
	fails(1, "refused the connection (nothing listens at 127.0.0.1:1)", "models", "--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/"+s.IDs[1], "--timeout", "2s")

	// A daemon that joins after the publish catches up.
	late, lateD, err := s.Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lateEnv := []string{"GRID_PATH=" + client, "GRID_BOOTSTRAP=" + lateD.Addr()}
	waitListed(ctx, t, bin, lateEnv, "convnet")

	// Stop every daemon (SIGTERM, clean exit), start the late joiner alone:
	// it lists the model from its own store.
	start = time.Now()
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d daemons stopped cleanly in %v", late+1, time.Since(start).Round(time.Millisecond))
	if _, err := s.Start(ctx, late); err != nil {
		t.Fatal(err)
	}
	waitListed(ctx, t, bin, lateEnv, "convnet")

	// Start the others again from their repo dirs: the query still answers.
	for i := range 5 {
		if _, err := s.Start(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := s.WaitPeers(wctx, 2); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted daemons see their peers after %v", time.Since(start).Round(time.Millisecond))
	checkInfer(t, ok("infer", "convnet", "--values", "5,3", "--json"), "convnet", 1022)

	// Unpublish: the model disappears.
	ok("unpublish", "convnet")
	fails(1, "unknown model", "infer", "convnet", "--values", "5,3")

	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
}

// waitListed polls grid models until it lists id (bounded by ctx and 20 s).
func waitListed(ctx context.Context, t *testing.T, bin string, env []string, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last harness.Result
	for ctx.Err() == nil {
		res, err := harness.Run(ctx, bin, env, "models", "--json", "--timeout", "10s")
		if err != nil {
			break
		}
		last = res
		var models []modelView
		if res.Code == 0 && json.Unmarshal([]byte(res.Stdout), &models) == nil && findModel(models, id) != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("model %q never listed; last: %v", id, last)
}

func decode(t *testing.T, res harness.Result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		t.Fatalf("decode %v: %v", res, err)
	}
}

func checkInfer(t *testing.T, res harness.Result, model string, want float64) {
	t.Helper()
	var v inferView
	decode(t, res, &v)
	if v.Model != model || !equalInts(v.Shape, []int{1}) || len(v.Output) != 1 || math.Abs(v.Output[0]-want) > 1e-3 {
		t.Fatalf("infer %s answered %+v, want shape [1] and output [%g]", model, v, want)
	}
}

func findModel(ms []modelView, id string) *modelView {
	for i := range ms {
		if ms[i].ID == id {
			return &ms[i]
		}
	}
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
