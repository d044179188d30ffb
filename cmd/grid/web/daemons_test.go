package web_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// browserSwarm is five "grid daemon" processes on loopback (every role,
// the default config: TCP and WebSockets, an HTTP API serving the page)
// and a client repo, me, that owns the published models.
type browserSwarm struct {
	t       *testing.T
	bin     string
	daemons []*harness.Daemon
	boot    string
	me      string
}

func startBrowserSwarm(t *testing.T, n int) *browserSwarm {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	dir := t.TempDir()
	bin, err := harness.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &browserSwarm{t: t, bin: bin}
	opts := harness.Options{Bin: bin}
	t.Cleanup(func() {
		for _, d := range s.daemons {
			if d.Running() {
				if err := d.Stop(); err != nil {
					t.Logf("stop %s: %v", d.Repo, err)
				}
			}
		}
	})
	for i := range n {
		repo := filepath.Join(dir, fmt.Sprintf("n%d", i))
		if _, err := harness.Init(ctx, bin, repo); err != nil {
			t.Fatal(err)
		}
		var args []string
		if i > 0 {
			args = []string{"--bootstrap", s.boot}
		}
		d, err := harness.StartDaemon(ctx, opts, repo, args...)
		if err != nil {
			t.Fatal(err)
		}
		s.daemons = append(s.daemons, d)
		if i == 0 {
			for _, a := range d.Addrs {
				if !strings.Contains(a, "/ws") {
					s.boot = a
					break
				}
			}
			if !slices.ContainsFunc(d.Addrs, func(a string) bool { return strings.Contains(a, "/tcp/") && strings.Contains(a, "/ws/p2p/") }) {
				t.Fatalf("daemon 0 listens on no WebSocket address: %v", d.Addrs)
			}
		}
	}
	if err := harness.WaitPeers(ctx, n-1, s.daemons...); err != nil {
		t.Fatal(err)
	}
	s.me = filepath.Join(dir, "me")
	if _, err := harness.Init(ctx, bin, s.me, "--bootstrap", s.boot); err != nil {
		t.Fatal(err)
	}
	return s
}

// grid runs a client command as me.
func (s *browserSwarm) grid(args ...string) harness.Result {
	s.t.Helper()
	ctx := testContext(s.t, 2*time.Minute)
	r, err := harness.Run(ctx, s.bin, nil, append(args, "--repo", s.me)...)
	if err != nil {
		s.t.Fatal(err)
	}
	if r.Code != 0 {
		s.t.Fatalf("%s", r)
	}
	return r
}

// cliInfer is grid infer --json's answer.
type cliInfer struct {
	Output  []float64 `json:"output"`
	Shape   []int     `json:"shape"`
	Holders []string  `json:"holders"`
	Dealer  string    `json:"dealer"`
	TotalMS float64   `json:"total_ms"`
}

func (s *browserSwarm) infer(args ...string) cliInfer {
	s.t.Helper()
	r := s.grid(append([]string{"infer"}, append(args, "--json")...)...)
	var out cliInfer
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		s.t.Fatalf("grid infer --json: %v: %q", err, r.Stdout)
	}
	return out
}

// TestBrowserDaemons is the acceptance test of the browser client: a page
// served by a real daemon, in headless Chromium, lists the models and
// answers the seed's 1022, the digits MLP's classes for a .npy sample and
// the digits CNN's class for a drawing, and shows clear errors for an
// unknown model, a wrong input shape, a refused query and an unreachable
// holder. It logs the browser's latency next to the CLI's.
func TestBrowserDaemons(t *testing.T) {
	d := startDriver(t)
	s := startBrowserSwarm(t, 5)
	testdata := filepath.Join(repoRoot(t), "testdata")
	s.grid("publish", filepath.Join(testdata, "seed.onnx"), "--id", "convnet", "--holders", "4")
	s.grid("publish", filepath.Join(testdata, "digits_mlp.onnx"), "--id", "digits", "--holders", "3")
	s.grid("publish", filepath.Join(testdata, "digits_cnn.onnx"), "--id", "digits-cnn", "--holders", "3")
	s.grid("publish", filepath.Join(testdata, "seed.onnx"), "--id", "private", "--holders", "2", "--no-remote-inference")
	s.grid("publish", filepath.Join(testdata, "seed.onnx"), "--id", "convnet-f1", "--holders", "4", "--tolerate", "1")

	page := "http://" + s.daemons[0].API + "/"
	var opened struct {
		Status string `json:"status"`
	}
	d.must(map[string]any{"do": "open", "url": page}, &opened)
	t.Logf("page %s: %s", page, opened.Status)
	var listed struct {
		Models []string `json:"models"`
	}
	d.must(map[string]any{"do": "models"}, &listed)
	for _, m := range []string{"convnet", "digits", "digits-cnn", "private", "convnet-f1"} {
		if !slices.Contains(listed.Models, m) {
			t.Fatalf("the page lists %v, not %s", listed.Models, m)
		}
	}

	// The seed model: [5, 3] -> 1022, typed into the page.
	r := d.query(map[string]any{"model": "convnet", "values": "5, 3"})
	if r.State != "ok" || r.Answer != "1022" {
		t.Fatalf("seed from the page: %+v", r)
	}
	if shot := os.Getenv("GRID_BROWSER_SCREENSHOT"); shot != "" {
		d.must(map[string]any{"do": "screenshot", "path": shot, "fullPage": true}, nil)
		t.Logf("screenshot: %s", shot)
	}

	// The digits MLP on the 4 held-out samples of digits_sample.npy, chosen
	// as a file: the same classes as the CLI's.
	cli := s.infer("digits", "--input", filepath.Join(testdata, "digits_sample.npy"))
	want := ints(argmaxRows(cli.Output, 10))
	r = d.query(map[string]any{"model": "digits", "file": filepath.Join(testdata, "digits_sample.npy")})
	if r.State != "ok" || r.Classes != want {
		t.Fatalf("digits from a .npy in the page: %+v, the CLI's classes %s", r, want)
	}
	t.Logf("digits MLP on digits_sample.npy: classes %s (CLI %s)", r.Classes, want)

	// The digits CNN on a drawing (a vertical stroke, a "1"): a class.
	r = d.query(map[string]any{"model": "digits-cnn", "draw": [][]float64{{0.5, 0.15}, {0.5, 0.5}, {0.5, 0.85}}})
	if r.State != "ok" || len(r.Classes) != 1 {
		t.Fatalf("digits CNN on a drawing: %+v", r)
	}
	t.Logf("digits CNN on a drawn stroke: class %s", r.Classes)

	// Clear errors.
	for _, c := range []struct {
		name, model, values, code, text string
	}{
		{"unknown model", "no-such-model", "5, 3", "UNKNOWN_MODEL", `unknown model "no-such-model"`},
		{"wrong shape", "convnet", "1, 2, 3", "BAD_INPUT", "expects shape [2] (2 values), got 3 values"},
		{"refused query", "private", "5, 3", "REMOTE_DISABLED", "remote inference disabled"},
	} {
		r := d.query(map[string]any{"model": c.model, "values": c.values})
		if r.State != "error" || r.Code != c.code || !strings.Contains(r.Text, c.text) {
			t.Errorf("%s: the page shows %+v, want code %s and %q", c.name, r, c.code, c.text)
		} else {
			t.Logf("%s: %s", c.name, strings.ReplaceAll(r.Text, "\n", " | "))
		}
	}

	latency(t, s, d)

	// Replicated shares (--tolerate 1): the browser picks one live holder
	// per share.
	if r := d.query(map[string]any{"model": "convnet-f1", "values": "5, 3"}); r.State != "ok" || r.Answer != "1022" {
		t.Fatalf("replicated seed from the page: %+v", r)
	}

	// An unreachable holder: stop a daemon (not the one serving the page)
	// that holds shares of both seed models, then query both: the plain
	// one fails naming it, the replicated one answers.
	holders := s.modelHolders()
	var victim *harness.Daemon
	for _, dm := range s.daemons[1:] {
		if slices.Contains(holders["convnet"], dm.ID) && slices.Contains(holders["convnet-f1"], dm.ID) {
			victim = dm
			break
		}
	}
	if victim == nil {
		t.Fatalf("no daemon 1-4 holds shares of both convnet and convnet-f1: %v", holders)
	}
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	r = d.query(map[string]any{"model": "convnet", "values": "5, 3"})
	if r.State != "error" || r.Code != "UNREACHABLE" || !strings.Contains(r.Text, victim.ID) {
		t.Fatalf("with holder %s stopped the page shows %+v, want UNREACHABLE naming it", victim.ID, r)
	}
	t.Logf("unreachable holder: %s", strings.ReplaceAll(r.Text, "\n", " | "))
	r = d.query(map[string]any{"model": "convnet-f1", "values": "5, 3"})
	if r.State != "ok" || r.Answer != "1022" {
		t.Fatalf("replicated seed with holder %s stopped: %+v", victim.ID, r)
	}
	t.Logf("replicated seed with a holder down: %s", strings.ReplaceAll(r.Answer, "\n", " "))
}

// modelHolders is each model's holders, from grid models --json.
func (s *browserSwarm) modelHolders() map[string][]string {
	s.t.Helper()
	r := s.grid("models", "--json")
	var ms []struct {
		ID      string   `json:"id"`
		Holders []string `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		s.t.Fatalf("grid models --json: %v: %q", err, r.Stdout)
	}
	out := map[string][]string{}
	for _, m := range ms {
		out[m.ID] = m.Holders
	}
	return out
}

// latency measures the browser's query time (window.grid.infer, the page's
// connections already open) for the seed and the digits MLP next to the
// CLI's total_ms, and writes them to GRID_BROWSER_FIGURES when set.
func latency(t *testing.T, s *browserSwarm, d *driver) {
	const n = 20
	sample := []float64{0, 0, 2, 13, 16, 9, 0, 0, 0, 0, 12, 12, 7, 16, 3, 0, 0, 1, 14, 3, 0, 16, 4, 0, 0, 0, 0, 4, 10, 16, 6, 0, 0, 0, 0, 13, 16, 16, 9, 0, 0, 0, 0, 5, 13, 1, 0, 0, 0, 0, 0, 11, 9, 0, 0, 0, 0, 0, 1, 16, 4, 0, 0, 0}
	type figure struct {
		Model      string             `json:"model"`
		BrowserMS  []float64          `json:"browser_ms"`
		CLIMS      []float64          `json:"cli_total_ms"`
		BrowserMed float64            `json:"browser_median_ms"`
		CLIMed     float64            `json:"cli_median_ms"`
		Stages     map[string]float64 `json:"browser_stage_median_ms"`
		Online     float64            `json:"holders_online_median_ms"`
	}
	var figs []figure
	for _, c := range []struct {
		model  string
		values []float64
		flag   string
	}{
		{"convnet", []float64{5, 3}, "5,3"},
		{"digits", sample, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(sample)), ","), "[]")},
	} {
		f := figure{Model: c.model}
		stages := map[string][]float64{}
		var online []float64
		for _, r := range d.api(c.model, c.values, n) {
			f.BrowserMS = append(f.BrowserMS, r.MS)
			online = append(online, r.Online)
			for k, v := range r.Stages {
				stages[k] = append(stages[k], v)
			}
		}
		f.Stages, f.Online = map[string]float64{}, median(online)
		for k, v := range stages {
			f.Stages[k] = median(v)
		}
		for range 5 {
			f.CLIMS = append(f.CLIMS, s.infer(c.model, "--values", c.flag).TotalMS)
		}
		f.BrowserMed, f.CLIMed = median(f.BrowserMS), median(f.CLIMS)
		var st []string
		for _, k := range []string{"prepare", "open", "deal", "collect", "reveal"} {
			st = append(st, fmt.Sprintf("%s %.1f", k, f.Stages[k]))
		}
		t.Logf("%s: browser median %.1f ms over %d queries (min %.1f; stage medians %s ms; holders online %.1f ms), CLI total_ms median %.1f over %d",
			c.model, f.BrowserMed, n, slices.Min(f.BrowserMS), strings.Join(st, ", "), f.Online, f.CLIMed, len(f.CLIMS))
		figs = append(figs, f)
	}
	if path := os.Getenv("GRID_BROWSER_FIGURES"); path != "" {
		b, _ := json.MarshalIndent(figs, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
