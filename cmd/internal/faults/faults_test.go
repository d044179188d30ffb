package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/delayproxy"
	"github.com/gridmpc/grid/cmd/internal/harness"
	"github.com/gridmpc/grid/node"
)

// sessionTimeout is every party's session timeout in these tests.
const sessionTimeout = 6 * time.Second

// testdata is the repo's fixtures directory.
var testdata = filepath.Join("..", "..", "..", "testdata")

// fixture is a running cluster with the seed model and the digits CNN
// published over its 4 holders.
type fixture struct {
	*Cluster
	t        *testing.T
	ctx      context.Context
	holders  map[string][]string // model -> holder peer IDs in party order
	cnnInput string              // a batch of digits, JSON
	cnnWant  [][]float64         // PyTorch's logits for it
}

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault tests with real processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	f := newFixture(t, ctx)
	f.publish("seed", filepath.Join(testdata, "seed.onnx"))
	f.publish("cnn", filepath.Join(testdata, "digits_cnn.onnx"))
	f.cnnInput, f.cnnWant = digitsBatch(t, f.Root, 48)
	f.checkSeed(f.grid("infer", "seed", "--values", "5,3", "--json"))
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))

	f.subtest("holder killed before a query", f.holderKilledBeforeQuery)
	f.subtest("holder killed mid-session", f.holderKilledMidSession)
	f.subtest("client killed mid-session", f.clientKilledMidSession)
	f.subtest("dealer killed mid-session", f.dealerKilledMidSession)
	f.subtest("holder killed during share upload", f.holderKilledDuringUpload)
	f.subtest("corrupted share", f.corruptedShare)
	f.subtest("truncated datastore", f.truncatedDatastore)
	f.subtest("damaged table file", f.damagedTable)
}

// newFixture builds grid (with a bound of its own: the build may wait for
// CPU behind other packages' tests) and starts the cluster within ctx; on
// failure the daemons' log tails are logged.
func newFixture(t *testing.T, ctx context.Context) *fixture {
	dir := t.TempDir()
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	start := time.Now()
	bin, err := harness.Build(bctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built grid in %v", since(start))
	start = time.Now()
	c, err := StartCluster(ctx, bin, filepath.Join(dir, "cluster"), 4, sessionTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Logf("dealer and 4 holders up in %v", since(start))
	t.Cleanup(func() {
		for i := range c.Repos {
			if d := c.Daemon(i); t.Failed() && d != nil {
				t.Logf("daemon %d log (tail):\n%s", i, d.LogTail(2500))
			}
		}
	})
	return &fixture{Cluster: c, t: t, ctx: ctx, holders: map[string][]string{}}
}

// grid runs a client command with a bounded timeout and logs it.
func (f *fixture) grid(args ...string) harness.Result {
	f.t.Helper()
	start := time.Now()
	res, err := f.Grid(f.ctx, append(args, "--timeout", "60s")...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("grid %s: exit %d in %v", strings.Join(args, " "), res.Code, since(start))
	return res
}

func (f *fixture) publish(id, file string) {
	f.t.Helper()
	res := f.grid("publish", file, "--id", id, "--holders", "4", "--json")
	var m struct {
		Holders []string `json:"holders"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &m) != nil || len(m.Holders) != 4 {
		f.t.Fatalf("publish %s: %v", id, res)
	}
	f.holders[id] = m.Holders
}

// holderIndex is the cluster index of the model's holder of the given party.
func (f *fixture) holderIndex(model string, party int) int {
	i := f.Index(f.holders[model][party])
	if i < 1 {
		f.t.Fatalf("holder %d of %s is not a daemon of the cluster", party, model)
	}
	return i
}

// holderIndices are the cluster indices of the model's holders, by party,
// leaving out those in except.
func (f *fixture) holderIndices(model string, except ...int) []int {
	var out []int
	for p := range f.holders[model] {
		if i := f.holderIndex(model, p); !slices.Contains(except, i) {
			out = append(out, i)
		}
	}
	return out
}

func (f *fixture) checkSeed(res harness.Result) {
	f.t.Helper()
	var v struct{ Output []float64 }
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &v) != nil || len(v.Output) != 1 || math.Abs(v.Output[0]-1022) > 1e-3 {
		f.t.Fatalf("seed query: want [1022]; %v", res)
	}
}

func (f *fixture) checkCNN(res harness.Result) {
	f.t.Helper()
	var v struct {
		Shape  []int
		Output []float64
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &v) != nil {
		f.t.Fatalf("cnn query: %v", res)
	}
	if !slices.Equal(v.Shape, []int{len(f.cnnWant), 10}) {
		f.t.Fatalf("cnn query: shape %v, want [%d 10]", v.Shape, len(f.cnnWant))
	}
	for i, row := range f.cnnWant {
		for j, w := range row {
			if d := math.Abs(v.Output[10*i+j] - w); d > 0.01 {
				f.t.Fatalf("cnn query: sample %d logit %d is %g, PyTorch %g: a wrong answer", i, j, v.Output[10*i+j], w)
			}
		}
	}
}

// failsNaming checks a command failed with exit 1 and one line on stderr
// naming the peer.
func (f *fixture) failsNaming(res harness.Result, peerID string) {
	f.t.Helper()
	errText := res.Stderr
	if res.Code != 1 || res.Stdout != "" || strings.Count(errText, "\n") != 1 || !strings.HasPrefix(errText, "grid: ") || !strings.Contains(errText, peerID) {
		f.t.Fatalf("want exit 1 and one line naming %s; got %v", peerID, res)
	}
}

// subtest runs one fault test; afterwards every daemon it stopped is
// started again, so that a failure does not cascade into the next tests.
func (f *fixture) subtest(name string, fn func(t *testing.T)) {
	parent := f.t
	parent.Run(name, func(t *testing.T) {
		f.t = t
		defer func() { f.t = parent }()
		t.Cleanup(func() {
			for i := range f.Repos {
				if f.Daemon(i) == nil {
					if _, err := f.Start(f.ctx, i); err != nil {
						t.Errorf("restart daemon %d after the test: %v", i, err)
					}
				}
			}
		})
		fn(t)
	})
}

// baseline reads each running holder's goroutine count.
func (f *fixture) baseline(holders []int) map[int]float64 {
	f.t.Helper()
	b := map[int]float64{}
	for _, i := range holders {
		v, err := f.Metric(f.ctx, i, "go_goroutines")
		if err != nil {
			f.t.Fatal(err)
		}
		b[i] = v
	}
	return b
}

// waitFreed waits until each holder serves no session and its goroutine
// count is back to its baseline (a small margin for libp2p's own
// background work), at most the session timeout plus 10 s.
func (f *fixture) waitFreed(base map[int]float64) {
	f.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, sessionTimeout+10*time.Second)
	defer cancel()
	for i, b := range base {
		if _, err := f.WaitMetric(ctx, i, "grid_sessions_active", func(v float64) bool { return v == 0 }); err != nil {
			f.t.Fatalf("holder %d never freed its session: %v", i, err)
		}
		g, err := f.WaitMetric(ctx, i, "go_goroutines", func(v float64) bool { return v <= b+5 })
		if err != nil {
			f.t.Fatalf("holder %d: goroutines %g, baseline %g: leak: %v", i, g, b, err)
		}
		f.t.Logf("daemon %d: 0 active sessions, goroutines %g (baseline %g)", i, g, b)
	}
	f.t.Logf("sessions freed %v after the fault", since(start))
}

// restart starts daemon i again from its repo dir and waits until every
// daemon sees all the others.
func (f *fixture) restart(i int) {
	f.t.Helper()
	start := time.Now()
	if _, err := f.Start(f.ctx, i); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	if err := f.WaitPeers(ctx, len(f.Repos)-1); err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("daemon %d restarted from its repo dir and connected in %v", i, since(start))
}

func (f *fixture) holderKilledBeforeQuery(t *testing.T) {
	victim := f.holderIndex("seed", 2)
	f.Kill(victim)
	start := time.Now()
	res := f.grid("infer", "seed", "--values", "5,3", "--json")
	f.failsNaming(res, f.IDs[victim])
	t.Logf("query failed in %v naming the killed holder: %s", since(start), strings.TrimSpace(res.Stderr))
	f.restart(victim)
	f.checkSeed(f.grid("infer", "seed", "--values", "5,3", "--json"))
}

// midSession starts a CNN query and returns once the holder at index
// watch has received MPC traffic of it (the online phase is running).
func (f *fixture) midSession(watch int) *harness.Proc {
	f.t.Helper()
	series := `grid_bytes_received_total{protocol="mpc"}`
	before, err := f.Metric(f.ctx, watch, series)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := f.StartGrid("infer", "cnn", "--input", f.cnnInput, "--json", "--timeout", "60s")
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	if _, err := f.WaitMetric(ctx, watch, series, func(v float64) bool { return v > before }); err != nil {
		res, _ := p.Wait(f.ctx)
		f.t.Fatalf("the session never reached holder %d's online phase: %v; %v", watch, err, res)
	}
	return p
}

func (f *fixture) holderKilledMidSession(t *testing.T) {
	victim := f.holderIndex("cnn", 1)
	base := f.baseline(f.holderIndices("cnn", victim))
	p := f.midSession(victim)
	f.Kill(victim)
	killed := time.Now()
	res, err := p.Wait(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code == 0 {
		t.Fatalf("the session ended before the kill; make it longer: %v", res)
	}
	f.failsNaming(res, f.IDs[victim])
	t.Logf("client failed %v after the kill: %s", p.Ended.Sub(killed).Round(time.Millisecond), strings.TrimSpace(res.Stderr))
	f.waitFreed(base)
	f.restart(victim)
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))
}

func (f *fixture) clientKilledMidSession(t *testing.T) {
	hs := f.holderIndices("cnn")
	base := f.baseline(hs)
	p := f.midSession(hs[0])
	p.Kill()
	f.waitFreed(base)
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))
}

func (f *fixture) dealerKilledMidSession(t *testing.T) {
	hs := f.holderIndices("cnn")
	base := f.baseline(hs)
	series := `grid_sessions_started_total{role="dealer"}`
	before, err := f.Metric(f.ctx, 0, series)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.StartGrid("infer", "cnn", "--input", f.cnnInput, "--json", "--timeout", "60s")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	if _, err := f.WaitMetric(ctx, 0, series, func(v float64) bool { return v > before }); err != nil {
		t.Fatal(err)
	}
	f.Kill(0)
	res, err := p.Wait(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code == 0 {
		// The bundles were out before the kill: the session needs the
		// dealer no more, and its answer must be right.
		f.checkCNN(res)
		t.Log("the dealer was killed after delivering its bundles: the session completed, answer right")
	} else {
		f.failsNaming(res, f.IDs[0])
		t.Logf("the dealer was killed while dealing: %s", strings.TrimSpace(res.Stderr))
	}
	f.waitFreed(base)
	f.restart(0)
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))
}

// holderKilledDuringUpload publishes a model of 24.6 MB of shares per
// holder (more than libp2p's 16 MiB per-stream memory limit) while one
// holder sits behind a slow link (a delaying proxy it announces), and
// SIGKILLs that holder once the first chunks reached it.
func (f *fixture) holderKilledDuringUpload(t *testing.T) {
	model, err := MatMulONNX(1024, 3000)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(f.Root, "big.onnx")
	if err := os.WriteFile(file, model, 0o644); err != nil {
		t.Fatal(err)
	}
	victim := 3
	if err := f.Stop(victim); err != nil {
		t.Fatal(err)
	}
	_, proxy, err := f.StartProxied(f.ctx, victim, delayproxy.Config{Delay: 20 * time.Millisecond, ChunkSize: 16 << 10, MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	wctx, wcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer wcancel()
	if err := f.WaitPeers(wctx, len(f.Repos)-1); err != nil {
		t.Fatal(err)
	}
	series := `grid_bytes_received_total{protocol="shares"}`
	before, err := f.Metric(f.ctx, victim, series)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.StartGrid("publish", file, "--id", "big", "--holders", "4", "--json", "--timeout", "60s")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	got, err := f.WaitMetric(ctx, victim, series, func(v float64) bool { return v > before })
	if err != nil {
		res, _ := p.Wait(f.ctx)
		t.Fatalf("upload never reached daemon %d: %v; %v", victim, err, res)
	}
	f.Kill(victim)
	t.Logf("daemon %d killed with %.2f of its 24.6 MB of shares received", victim, (got-before)/1e6)
	res, err := p.Wait(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.failsNaming(res, f.IDs[victim])
	t.Logf("publish failed: %s", lastLine(res.Stderr))
	// The killed holder's store: the model is absent (or, had its commit
	// made it, complete with its completion marker).
	big, keys, err := Stored(f.Repos[victim], "big")
	if err != nil {
		t.Fatal(err)
	}
	if big.Keys > 0 && !big.Complete {
		t.Fatalf("partial model in the store after the kill: %+v", big)
	}
	t.Logf("daemon %d's store after the kill: %d keys of the model (%d keys in all)", victim, big.Keys, keys)
	proxy.Close()
	f.restart(victim)
	if v, err := f.Metric(f.ctx, victim, "grid_damaged_models"); err != nil || v != 0 {
		t.Fatalf("damaged models after the restart: %g, %v", v, err)
	}
	var models []struct{ ID string }
	res = f.grid("models", "--json")
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &models) != nil {
		t.Fatalf("models: %v", res)
	}
	for _, m := range models {
		if m.ID == "big" {
			t.Fatal("the failed publish announced its model")
		}
	}
	f.checkSeed(f.grid("infer", "seed", "--values", "5,3", "--json"))
}

func (f *fixture) corruptedShare(t *testing.T) {
	victim := f.holderIndex("seed", 0)
	if err := f.Stop(victim); err != nil {
		t.Fatal(err)
	}
	key, err := node.CorruptStoredShares(f.Repos[victim], "seed")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped a byte of %s", key)
	f.restart(victim)
	if v, err := f.Metric(f.ctx, victim, "grid_damaged_models"); err != nil || v != 1 {
		t.Fatalf("grid_damaged_models = %g (%v), want 1", v, err)
	}
	if log := f.Daemon(victim).LogTail(1 << 16); !strings.Contains(log, "damaged") {
		t.Fatalf("the daemon's log does not report the damage:\n%s", log)
	}
	res := f.grid("infer", "seed", "--values", "5,3", "--json")
	f.failsNaming(res, f.IDs[victim])
	if !strings.Contains(res.Stderr, "damaged") {
		t.Fatalf("the error does not say the shares are damaged: %v", res)
	}
	// The other model of the same holder still answers.
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))
}

// truncatedDatastore publishes a model, SIGKILLs one of its holders (the
// model's batch is then only in the datastore's write-ahead log) and cuts
// the log inside that batch, as a crash or a full disk would.
func (f *fixture) truncatedDatastore(t *testing.T) {
	f.publish("seed2", filepath.Join(testdata, "seed.onnx"))
	f.checkSeedModel("seed2", f.grid("infer", "seed2", "--values", "5,3", "--json"))
	victim := f.holderIndex("seed2", 1)
	f.Kill(victim)
	wal, off, err := node.CutStoredShares(f.Repos[victim], "seed2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cut %s at byte %d, inside the batch that stored the model", filepath.Base(wal), off)
	got, _, err := Stored(f.Repos[victim], "seed2")
	if err != nil {
		t.Fatalf("the datastore does not open after the cut: %v", err)
	}
	if got.Keys > 0 {
		t.Fatalf("the cut batch left keys of the model: %+v", got)
	}
	f.restart(victim)
	// The daemon finds, once its registry is synced, that a manifest names
	// it as a holder of a model it lacks, and says so.
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	if _, err := f.WaitMetric(ctx, victim, "grid_missing_models", func(v float64) bool { return v >= 1 }); err != nil {
		t.Fatalf("the lost model is not reported: %v", err)
	}
	if log := f.Daemon(victim).LogTail(1 << 16); !strings.Contains(log, "seed2") || !strings.Contains(log, "does not have") {
		t.Fatalf("the daemon's log does not name the lost model:\n%s", log)
	}
	res := f.grid("infer", "seed2", "--values", "5,3", "--json")
	f.failsNaming(res, f.IDs[victim])
	t.Logf("query refused: %s", strings.TrimSpace(res.Stderr))
	f.checkCNN(f.grid("infer", "cnn", "--input", f.cnnInput, "--json"))
}

// damagedTable truncates a table file (.sst) of a stopped holder's
// datastore, which pebble then refuses to open: the daemon must still
// start, move the damaged store aside (kept for recovery), report it, and
// refuse the models it held rather than answer.
func (f *fixture) damagedTable(t *testing.T) {
	victim := f.holderIndex("cnn", 2)
	// A stop and a start make pebble write its tables.
	if err := f.Stop(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Start(f.ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(victim); err != nil {
		t.Fatal(err)
	}
	if n, err := TruncateTables(f.Repos[victim]); err != nil || n == 0 {
		t.Fatalf("no table file in daemon %d's datastore (%v)", victim, err)
	}
	if _, err := node.InspectRepo(f.Repos[victim]); err == nil {
		t.Fatal("pebble opens the truncated datastore: the test damages nothing")
	}
	f.restart(victim)
	if v, err := f.Metric(f.ctx, victim, "grid_damaged_models"); err != nil || v < 1 {
		t.Fatalf("grid_damaged_models = %g (%v), want the damage reported", v, err)
	}
	log := f.Daemon(victim).LogTail(1 << 16)
	if !strings.Contains(log, "datastore damaged") {
		t.Fatalf("the daemon's log does not report the damage:\n%s", log)
	}
	aside, _ := filepath.Glob(filepath.Join(f.Repos[victim], "datastore.damaged-*"))
	if len(aside) != 1 {
		t.Fatalf("damaged datastore not kept aside: %v", aside)
	}
	res := f.grid("infer", "cnn", "--input", f.cnnInput, "--json")
	f.failsNaming(res, f.IDs[victim])
	t.Logf("query refused: %s", strings.TrimSpace(res.Stderr))
}

func (f *fixture) checkSeedModel(id string, res harness.Result) {
	f.t.Helper()
	var v struct{ Model string }
	if json.Unmarshal([]byte(res.Stdout), &v) != nil || v.Model != id {
		f.t.Fatalf("query of %s: %v", id, res)
	}
	f.checkSeed(res)
}

// digitsBatch writes the first n held-out digits as a JSON batch and
// returns its path and PyTorch's CNN logits for them.
func digitsBatch(t *testing.T, dir string, n int) (string, [][]float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, "digits_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		X      [][]float64            `json:"x"`
		Logits map[string][][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	want := d.Logits["digits_cnn"]
	if len(d.X) < n || len(want) < n {
		t.Fatalf("digits_test.json has %d samples and %d CNN logits", len(d.X), len(want))
	}
	out, err := json.Marshal(d.X[:n])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("digits%d.json", n))
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, want[:n]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
