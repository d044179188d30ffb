package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gridmpc/grid/cmd/internal/faults"
	"github.com/gridmpc/grid/cmd/internal/harness"
)

// modelID is the name the benchmark publishes the model under.
const modelID = "bench"

// Report is what a run measured; times are milliseconds.
type Report struct {
	Model   string `json:"model"`
	File    string `json:"file"`
	Holders int    `json:"holders"`
	Batch   int    `json:"batch"`
	Queries int    `json:"queries"`
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end.
	LoadAvg [2]float64 `json:"load_avg"`

	PublishMs float64 `json:"publish_ms"`
	// WarmMs is how long after publish returned the dealer's warm session
	// had opened the weight masks (-1: not waited for, --no-wait-warm, or
	// failed: WarmNote says why).
	WarmMs   float64 `json:"warm_ms"`
	WarmNote string  `json:"warm_note,omitempty"`
	// FirstMs is the first query's time from the start of grid infer to
	// its exit; SteadyMs the median and p90 of the later ones.
	FirstMs  float64    `json:"first_ms"`
	SteadyMs [2]float64 `json:"steady_ms"`
	// FirstOnlineMs is the first query's online time (grid infer --json).
	FirstOnlineMs float64 `json:"first_online_ms"`
	// FirstMaskOpens is how many mask sets the holders opened during the
	// first query (0 when the warm session did it).
	FirstMaskOpens float64 `json:"first_mask_opens"`
	OnlineMs       float64 `json:"online_ms"` // median of the later queries' online time
	Rounds         int     `json:"rounds"`    // online rounds of a query

	// Per query, from the daemons' metrics: each holder's and the dealer's
	// bytes sent and received on grid's protocols.
	HolderBytes []Bytes `json:"holder_bytes"`
	DealerBytes Bytes   `json:"dealer_bytes"`
	// PeakRSS is each daemon's VmHWM in KiB: the dealer first.
	PeakRSS []int64 `json:"peak_rss_kib"`

	Torch *TorchTime `json:"torch,omitempty"`
	// TorchNote says why there is no PyTorch figure.
	TorchNote string `json:"torch_note,omitempty"`

	gridOutput []float64 // the last query's answer
}

// Bytes are one party's bytes per query.
type Bytes struct {
	Sent float64 `json:"sent"`
	Recv float64 `json:"recv"`
}

// Run publishes the model between fresh daemons, waits for the warm
// session, runs the queries and gathers the figures. Progress notes go to
// logw.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	tmp, err := os.MkdirTemp("", "grid-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rep := &Report{Model: cfg.Model, Holders: cfg.Holders, Batch: cfg.Batch, Queries: cfg.Queries}
	rep.LoadAvg[0] = loadAvg()
	file, input, err := modelFiles(cfg, tmp)
	if err != nil {
		return nil, err
	}
	rep.File = file
	bin := cfg.GridBin
	if bin == "" {
		fmt.Fprintln(logw, "grid-bench: building ./cmd/grid")
		if bin, err = harness.Build(ctx, tmp); err != nil {
			return nil, err
		}
	}
	s, client, err := startSwarm(ctx, bin, filepath.Join(tmp, "repos"), cfg.Holders)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	fmt.Fprintf(logw, "grid-bench: publishing %s over %d holders\n", file, cfg.Holders)
	if err := publish(ctx, s, client, file, cfg, rep); err != nil {
		return nil, err
	}
	if err := queries(ctx, s, client, input, cfg, rep); err != nil {
		return nil, err
	}
	for i := range cfg.Holders + 1 {
		rep.PeakRSS = append(rep.PeakRSS, peakRSS(s.Daemon(i).PID()))
	}
	if !cfg.NoTorch {
		rep.Torch, rep.TorchNote = torchTime(ctx, cfg.Root, file, input, rep.gridOutput)
	}
	rep.LoadAvg[1] = loadAvg()
	return rep, nil
}

// startSwarm starts the dealer (daemon 0) and the holders with a long
// session timeout, and makes the client repo (cmd/internal/faults' cluster).
func startSwarm(ctx context.Context, bin, root string, holders int) (*harness.Swarm, string, error) {
	c, err := faults.StartCluster(ctx, bin, root, holders, 10*time.Minute)
	if err != nil {
		return nil, "", err
	}
	return c.Swarm, c.Client, nil
}

// publish publishes the model and waits for the dealer's warm session
// (unless Config.NoWaitWarm).
func publish(ctx context.Context, s *harness.Swarm, client, file string, cfg Config, rep *Report) error {
	start := time.Now()
	res, err := s.Grid(ctx, client, "publish", file, "--id", modelID, "--holders", strconv.Itoa(cfg.Holders), "--quiet")
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return fmt.Errorf("publish: %s", res)
	}
	rep.PublishMs = ms(time.Since(start))
	if cfg.NoWaitWarm {
		rep.WarmMs = -1
		return nil
	}
	start = time.Now()
	for {
		ok, err := s.Metric(ctx, 0, `grid_warms_total{result="ok"}`)
		if err != nil {
			return fmt.Errorf("wait for the dealer's warm session: %w", err)
		}
		if ok >= 1 {
			rep.WarmMs = ms(time.Since(start))
			return nil
		}
		// A warm that fails because a holder has not seen the manifest yet
		// is retried after 250 ms, doubling: give up after a few failures,
		// or at once when the dealer backs off for its 5-minute recheck
		// (a refusal that will not pass by itself).
		if failed, _ := s.Metric(ctx, 0, `grid_warms_total{result="failed"}`); failed >= 1 {
			line := lastLine(s.Daemon(0).LogTail(4096), "warm failed")
			if failed >= warmGiveUp || strings.Contains(line, "retry_in=5m") {
				rep.WarmMs, rep.WarmNote = -1, "the dealer's warm session failed: "+line
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the dealer's warm session: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// warmGiveUp is how many failed warm sessions publish waits through
// (retried after 0.25, 0.5, 1 and 2 s) before it reports none.
const warmGiveUp = 5

// lastLine is the last line of text containing sub ("" if none).
func lastLine(text, sub string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// inferJSON is what grid infer --json prints that the benchmark reads.
type inferJSON struct {
	Output   []float64 `json:"output"`
	Rounds   int       `json:"rounds"`
	OnlineMs float64   `json:"online_ms"`
}

// queries runs the queries one after the other, timing each grid infer
// command, and reads the daemons' traffic and mask openings around them.
func queries(ctx context.Context, s *harness.Swarm, client, input string, cfg Config, rep *Report) error {
	before, err := traffic(ctx, s, cfg.Holders)
	if err != nil {
		return err
	}
	opens0 := holderSum(ctx, s, cfg.Holders, "grid_mask_opens_total")
	var walls, online []float64
	for k := range cfg.Queries {
		start := time.Now()
		res, err := s.Grid(ctx, client, "infer", modelID, "--input", input, "--json")
		wall := ms(time.Since(start))
		if err != nil {
			return err
		}
		var out inferJSON
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &out) != nil {
			return fmt.Errorf("query %d: %s", k, res)
		}
		if k == 0 {
			rep.FirstMs, rep.FirstOnlineMs = wall, out.OnlineMs
			rep.FirstMaskOpens = holderSum(ctx, s, cfg.Holders, "grid_mask_opens_total") - opens0
			continue
		}
		walls, online = append(walls, wall), append(online, out.OnlineMs)
		rep.Rounds = out.Rounds
		rep.gridOutput = out.Output
	}
	rep.SteadyMs = [2]float64{quantile(walls, 0.5), quantile(walls, 0.9)}
	rep.OnlineMs = quantile(online, 0.5)
	after, err := traffic(ctx, s, cfg.Holders)
	if err != nil {
		return err
	}
	for i := range after {
		b := Bytes{Sent: (after[i].Sent - before[i].Sent) / float64(cfg.Queries), Recv: (after[i].Recv - before[i].Recv) / float64(cfg.Queries)}
		if i == 0 {
			rep.DealerBytes = b
		} else {
			rep.HolderBytes = append(rep.HolderBytes, b)
		}
	}
	return nil
}

// quantile is the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
