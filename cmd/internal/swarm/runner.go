package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// Options configures RunScenario.
type Options struct {
	// Grid is the path of the grid binary to run (required). Build it into
	// a fresh directory: the run checks at its end that no process of that
	// binary is left.
	Grid string
	// RepoRoot resolves a relative params.model_file (default: the
	// current directory).
	RepoRoot string
	// Out is the output directory: result.json, plots, and one folder per
	// run with the daemons' logs (required; created).
	Out string
	// Seed derives the identities and the churn events.
	Seed int64
	// Keep keeps the daemons' repo dirs (datastores) after the run.
	Keep bool
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// StopTimeout is the SIGTERM grace before a daemon is killed (default
	// the harness's, 10 s).
	StopTimeout time.Duration
}

// RunScenario runs the scenario and returns its result; a non-nil error is the
// reason the result did not pass (also in Result.Error). Every process it
// started is stopped before it returns, also when ctx is cancelled.
func RunScenario(ctx context.Context, sc *Scenario, scenarioPath string, o Options) (*Result, error) {
	start := time.Now()
	res := &Result{Plan: sc.Plan, Case: sc.Case, Scenario: scenarioPath, Description: sc.Description,
		Seed: o.Seed, Started: start.UTC(), Host: ThisHost()}
	err := run(ctx, sc, o, res)
	res.ElapsedMs = ms(time.Since(start))
	if o.Grid != "" {
		if left, lerr := harness.ProcessesOf(o.Grid); lerr == nil && len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("processes of %s left running: %v", o.Grid, left))
		}
	}
	res.Pass = err == nil
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

func run(ctx context.Context, sc *Scenario, o Options, res *Result) error {
	if o.Grid == "" || o.Out == "" {
		return errors.New("swarm: Options.Grid and Options.Out are required")
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	model := sc.Params.ModelFile
	if !filepath.IsAbs(model) {
		model = filepath.Join(o.RepoRoot, model)
	}
	if _, err := os.Stat(model); err != nil {
		return fmt.Errorf("params.model_file: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeouts.Total.D())
	defer cancel()
	r := &runner{sc: sc, o: o, model: model, log: o.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	type point struct {
		n   int
		rtt time.Duration
	}
	var points []point
	for _, n := range sc.Instances {
		if sc.Case == CaseWAN {
			for _, rtt := range sc.Params.RTTs {
				points = append(points, point{n, rtt.D()})
			}
		} else {
			points = append(points, point{n, 0})
		}
	}
	var errs []error
	for k, p := range points {
		run := &Run{Nodes: p.n, Holders: sc.Params.Holders, Tolerate: sc.Params.Tolerate, RTTMs: ms(p.rtt)}
		res.Runs = append(res.Runs, run)
		dir := filepath.Join(o.Out, fmt.Sprintf("run%d-n%d", k, p.n))
		if sc.Case == CaseWAN {
			dir += fmt.Sprintf("-rtt%s", p.rtt)
		}
		err := r.runOne(ctx, dir, p.n, p.rtt, run)
		run.Finish()
		if err != nil {
			run.Error = err.Error()
			errs = append(errs, fmt.Errorf("run %d (%d nodes, rtt %s): %w", k, p.n, p.rtt, err))
			if ctx.Err() != nil {
				break // interrupted or over the total time: no further runs
			}
		}
	}
	return errors.Join(errs...)
}

// runner holds what every run of a scenario shares.
type runner struct {
	sc    *Scenario
	o     Options
	model string
	log   io.Writer
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "swarm: "+format+"\n", args...)
}

// startParallel bounds how many daemons start at once (the machine has two
// cores; a daemon's start is mostly waiting on its bootstrap).
const startParallel = 4

// runOne brings up one swarm, runs the case on it and takes it down.
func (r *runner) runOne(ctx context.Context, dir string, n int, rtt time.Duration, run *Run) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	hopts := harness.Options{Bin: r.o.Grid, ReadyTimeout: r.sc.Timeouts.Ready.D(), StopTimeout: r.o.StopTimeout}
	s, err := harness.CreateSwarm(ctx, hopts, dir, harness.SwarmConfig{
		N: n, FixedPorts: true, Delay: rtt / 2, Parallel: startParallel,
		Prepare: seededIdentity(r.o.Seed), Logf: r.logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		_ = s.StopAll() // unclean stops are in StopErrors
		s.Close()
		run.StopErrors = s.StopErrors()
		if !r.o.Keep {
			s.RemoveRepos()
		}
		if err != nil {
			r.logf("failed: %v (daemon logs in %s)", err, dir)
		}
	}()
	r.logf("%s: starting %d daemons (rtt %s) in %s", r.sc.Case, n, rtt, dir)
	if err := r.bringUp(ctx, s, run); err != nil {
		return err
	}
	cl, err := r.newClients(ctx, s)
	if err != nil {
		return err
	}
	if run.ModelHolders, err = cl.publish(ctx, r.sc.Params.Model, false, run); err != nil {
		return err
	}
	switch r.sc.Case {
	case CaseChurn:
		err = r.churn(ctx, s, cl, run)
	default:
		err = r.queries(ctx, cl, run, r.sc.Params.Model, "mpc")
		if err == nil && r.sc.Params.Plain {
			var plainRun Run
			if _, err = cl.publish(ctx, r.sc.Params.Model+"-plain", true, &plainRun); err == nil {
				err = r.queries(ctx, cl, run, r.sc.Params.Model+"-plain", "plain")
			}
		}
	}
	for _, d := range s.Running() {
		if v, err := d.RSSKiB(); err == nil {
			run.RSSKiB = append(run.RSSKiB, v)
		}
	}
	return err
}

// seededIdentity gives each repo the identity its name (node3, owner)
// derives under seed, so that the same seed gives the same peer IDs.
func seededIdentity(seed int64) func(int, string) error {
	return func(_ int, repo string) error {
		sk, _, err := DeriveKey(seed, filepath.Base(repo))
		if err != nil {
			return err
		}
		_, err = SetIdentity(repo, sk)
		return err
	}
}

// bringUp starts the swarm's daemons and waits until each sees enough
// peers, within the ready timeout; it fills ReadyMs.
func (r *runner) bringUp(ctx context.Context, s *harness.Swarm, run *Run) error {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.sc.Timeouts.Ready.D())
	defer cancel()
	n := s.Len()
	err := s.StartAll(ctx)
	if err == nil {
		err = s.WaitPeers(ctx, minPeers(n))
	}
	if err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	run.ReadyMs = ms(time.Since(t0))
	r.logf("%d daemons ready, each with >= %d peers, in %.0f ms", n, minPeers(n), run.ReadyMs)
	return nil
}

// minPeers is how many peers each daemon must see before a swarm counts as
// up: everyone in a small swarm; in a large one a routing table's worth
// (Kademlia does not connect everyone to everyone).
func minPeers(n int) int { return min(n-1, 8) }

// queries runs the scenario's queries against model, sequentially.
func (r *runner) queries(ctx context.Context, cl *clients, run *Run, model, mode string) error {
	var bad []string
	for range r.sc.Params.Queries {
		q, err := cl.query(ctx, model, mode, len(run.Queries))
		if err != nil {
			return err
		}
		run.Queries = append(run.Queries, q)
		if q.Class != ClassRight {
			bad = append(bad, fmt.Sprintf("query %d (%s): %s %v %s", q.Index, mode, q.Class, q.Output, q.Err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d queries not right: %s", len(bad), r.sc.Params.Queries, strings.Join(bad, "; "))
	}
	last := run.Queries[len(run.Queries)-1]
	r.logf("%d %s queries of %s: last answer %v in %.1f ms (online %.1f ms, %d rounds, wall %.0f ms)",
		r.sc.Params.Queries, mode, model, last.Output, last.TotalMs, last.OnlineMs, last.Rounds, last.WallMs)
	return nil
}

// lastLine returns the last non-empty line of s (a CLI's one-line error).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
