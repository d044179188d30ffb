package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
		if left, lerr := ProcessesOf(o.Grid); lerr == nil && len(left) > 0 {
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
		run := &Run{Nodes: p.n, Holders: sc.Params.Holders, RTTMs: ms(p.rtt)}
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

// runOne brings up one swarm, runs the case on it and takes it down.
func (r *runner) runOne(ctx context.Context, dir string, n int, rtt time.Duration, run *Run) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	hopts := harness.Options{Bin: r.o.Grid, ReadyTimeout: r.sc.Timeouts.Ready.D(), StopTimeout: r.o.StopTimeout}
	c, err := newCluster(ctx, hopts, r.o.Seed, dir, n, rtt, r.logf)
	if err != nil {
		return err
	}
	defer func() {
		c.stopAll()
		c.Close()
		run.StopErrors = c.stopErrors
		if !r.o.Keep {
			c.removeRepos()
		}
		if err != nil {
			r.logf("failed: %v (daemon logs in %s)", err, dir)
		}
	}()

	r.logf("%s: starting %d daemons (rtt %s) in %s", r.sc.Case, n, rtt, dir)
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, r.sc.Timeouts.Ready.D())
	err = c.start(rctx)
	if err == nil {
		err = c.waitPeers(rctx, minPeers(n))
	}
	cancel()
	if err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	run.ReadyMs = ms(time.Since(t0))
	r.logf("%d daemons ready, each with >= %d peers, in %.0f ms", n, minPeers(n), run.ReadyMs)

	cl, err := r.newClients(ctx, dir, c)
	if err != nil {
		return err
	}
	holders, err := cl.publish(ctx, r.sc.Params.Model, false, run)
	if err != nil {
		return err
	}
	run.ModelHolders = holders
	switch r.sc.Case {
	case CaseChurn:
		err = r.churn(ctx, c, cl, run)
	default:
		err = r.queries(ctx, cl, run, r.sc.Params.Model, "mpc")
		if err == nil && r.sc.Params.Plain {
			var plainRun Run
			if _, err = cl.publish(ctx, r.sc.Params.Model+"-plain", true, &plainRun); err == nil {
				err = r.queries(ctx, cl, run, r.sc.Params.Model+"-plain", "plain")
			}
		}
	}
	run.RSSKiB = c.rss()
	return err
}

// minPeers is how many peers each daemon must see before a swarm counts as
// up: everyone in a small swarm; in a large one a routing table's worth
// (Kademlia does not connect everyone to everyone).
func minPeers(n int) int { return min(n-1, 8) }

// clients are the one-shot client identities of a run: the model's owner
// and a user who queries it.
type clients struct {
	r      *runner
	c      *cluster
	owner  string // repo dirs
	user   string
	models int // manifests published so far

	mu       sync.Mutex
	method   string // how registries are observed, once known
	logTimes bool   // acceptance times came from the daemons' logs
}

func (r *runner) newClients(ctx context.Context, dir string, c *cluster) (*clients, error) {
	owner, _, err := makeRepo(ctx, r.o.Grid, r.o.Seed, dir, "owner")
	if err != nil {
		return nil, fmt.Errorf("owner repo: %w", err)
	}
	user, _, err := makeRepo(ctx, r.o.Grid, r.o.Seed, dir, "user")
	if err != nil {
		return nil, fmt.Errorf("user repo: %w", err)
	}
	return &clients{r: r, c: c, owner: owner, user: user}, nil
}

// grid runs one client command with the given repo, bootstrapped from
// daemon 0, bounded by timeout (also passed as --timeout).
func (cl *clients) grid(ctx context.Context, repo string, timeout time.Duration, args ...string) (harness.Result, time.Duration, error) {
	args = append(args, "--repo", repo, "--bootstrap", cl.c.bootAddr(), "--timeout", timeout.String())
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	t0 := time.Now()
	res, err := harness.Run(ctx, cl.r.o.Grid, nil, args...)
	return res, time.Since(t0), err
}

// publish publishes the scenario's model under name, then waits until
// every running daemon lists it; it fills PublishMs and DiscoverMs and
// returns the holders' peer IDs.
func (cl *clients) publish(ctx context.Context, name string, plain bool, run *Run) ([]string, error) {
	p := cl.r.sc.Params
	args := []string{"publish", cl.r.model, "--id", name, "--json", "--quiet"}
	if plain {
		args = append(args, "--plain")
	} else {
		args = append(args, "--holders", strconv.Itoa(p.Holders))
	}
	started := time.Now()
	res, took, err := cl.grid(ctx, cl.owner, cl.r.sc.Timeouts.Publish.D(), args...)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", name, err)
	}
	if res.Code != 0 {
		return nil, fmt.Errorf("publish %s: exit %d: %s", name, res.Code, lastLine(res.Stderr))
	}
	var m struct {
		ID      string   `json:"id"`
		Holders []string `json:"holders"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &m); err != nil || m.ID != name {
		return nil, fmt.Errorf("publish %s: unexpected output %q", name, res.Stdout)
	}
	cl.models++
	run.PublishMs = ms(took)
	cl.r.logf("published %s (%s) in %.0f ms; holders %s", name, map[bool]string{true: "plain", false: "mpc"}[plain],
		run.PublishMs, strings.Join(cl.c.names(m.Holders), ","))
	cl.mu.Lock()
	cl.logTimes = false
	cl.mu.Unlock()
	last, method, err := cl.waitListed(ctx, name, started)
	if err != nil {
		return nil, err
	}
	if method != "" {
		run.DiscoverMs = ms(last.Sub(started))
		run.DiscoverMethod = method
		cl.r.logf("every daemon lists %s %.0f ms after the publish started (observed by %s)", name, run.DiscoverMs, method)
	}
	return m.Holders, nil
}

// names renders peer IDs as member names (node3), or the ID itself.
func (c *cluster) names(ids []string) []string {
	var out []string
	for _, id := range ids {
		if i := c.index(id); i >= 0 {
			out = append(out, fmt.Sprintf("node%d", i))
		} else {
			out = append(out, id)
		}
	}
	return out
}

// pollParallel bounds the concurrent API requests of one poll round.
const pollParallel = 8

// waitListed polls every running daemon (a few at a time) until each lists
// the model published at since. It returns when the last daemon accepted
// it (its logged time where the log has it, else the poll's time) and how
// that was observed ("" when the daemons offer no way to see it).
func (cl *clients) waitListed(ctx context.Context, name string, since time.Time) (time.Time, string, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.r.sc.Timeouts.Discover.D())
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var mu sync.Mutex
	seen := map[int]time.Time{}
	for {
		var (
			missing       []string
			notObservable error
			wg            sync.WaitGroup
		)
		sem := make(chan struct{}, pollParallel)
		for _, i := range cl.c.up() {
			d := cl.c.daemon(i)
			mu.Lock()
			done := !seen[i].IsZero()
			mu.Unlock()
			if d == nil || done {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ok, at, err := cl.observe(ctx, d, name, since)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, errNotObservable):
					notObservable = err
				case ok:
					seen[i] = at
				default:
					missing = append(missing, fmt.Sprintf("node%d", i))
				}
			})
		}
		wg.Wait()
		if notObservable != nil {
			cl.r.logf("cannot observe the daemons' model registries (%v): discovery time not measured", notObservable)
			return time.Time{}, "", nil
		}
		if len(missing) == 0 {
			var last time.Time
			for _, t := range seen {
				if t.After(last) {
					last = t
				}
			}
			return last, cl.methodName(), nil
		}
		select {
		case <-ctx.Done():
			slices.Sort(missing)
			return time.Time{}, cl.methodName(), fmt.Errorf("manifest %s not listed by %v after %s: %w", name, missing, cl.r.sc.Timeouts.Discover.D(), ctx.Err())
		case <-tick.C:
		}
	}
}

// waitOne waits until daemon d lists the model, polled like waitListed,
// and returns when it accepted it (zero if not observable).
func (cl *clients) waitOne(ctx context.Context, d *harness.Daemon, name string, since time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.r.sc.Timeouts.Discover.D())
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, at, err := cl.observe(ctx, d, name, since)
		if errors.Is(err, errNotObservable) {
			return time.Time{}, nil
		}
		if ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("manifest %s not listed after %s: %w", name, cl.r.sc.Timeouts.Discover.D(), ctx.Err())
		case <-tick.C:
		}
	}
}

// observe reports whether daemon d lists model name, and since when. It
// asks the daemon's /api/v0/models, else its Prometheus counter of
// accepted manifests; once either says yes, the time is taken from the
// daemon's "manifest accepted" log line when there is one (exact, unlike
// the poll's). A daemon with neither endpoint is observed through its log
// alone. Safe for concurrent use.
func (cl *clients) observe(ctx context.Context, d *harness.Daemon, name string, since time.Time) (bool, time.Time, error) {
	cl.mu.Lock()
	how := cl.method
	cl.mu.Unlock()
	if how != methodLog {
		ok, how, err := listed(ctx, d.API, name, cl.models)
		if errors.Is(err, errNotObservable) {
			cl.setMethod(methodLog)
			return cl.observe(ctx, d, name, since)
		}
		if err != nil || !ok {
			return false, time.Time{}, err
		}
		polled := time.Now()
		cl.setMethod(how)
		if at, ok, lerr := logAccepted(d.LogPath(), name, since); lerr == nil && ok && at.Before(polled) {
			cl.setLogTimes()
			return true, at, nil
		}
		return true, polled, nil
	}
	at, ok, err := logAccepted(d.LogPath(), name, since)
	if err != nil {
		return false, time.Time{}, err
	}
	return ok, at, nil
}

func (cl *clients) setMethod(m string) {
	cl.mu.Lock()
	cl.method = m
	cl.mu.Unlock()
}

func (cl *clients) setLogTimes() {
	cl.mu.Lock()
	cl.logTimes = true
	cl.mu.Unlock()
}

// methodName describes how discovery was observed, e.g. "metrics+log
// times".
func (cl *clients) methodName() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.logTimes && cl.method != methodLog {
		return cl.method + "+log times"
	}
	return cl.method
}

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

// query runs one `grid infer` and classifies its answer. Its error is set
// only when the run as a whole must stop (ctx ended or the binary cannot
// run); a failing query is a Query of class failed.
func (cl *clients) query(ctx context.Context, model, mode string, index int) (Query, error) {
	p := cl.r.sc.Params
	vals := make([]string, len(p.Values))
	for i, v := range p.Values {
		vals[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	args := []string{"infer", model, "--values", strings.Join(vals, ","), "--json"}
	if mode == "plain" {
		args = append(args, "--plain")
	}
	res, took, err := cl.grid(ctx, cl.user, cl.r.sc.Timeouts.Query.D(), args...)
	q := Query{Index: index, Mode: mode, ExitCode: res.Code, WallMs: ms(took)}
	if err != nil {
		if ctx.Err() != nil {
			return q, fmt.Errorf("query %d: %w", index, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			q.Class, q.ExitCode, q.Err = ClassFailed, -1, "no answer within the query timeout"
			return q, nil
		}
		return q, fmt.Errorf("query %d: %w", index, err)
	}
	if res.Code != 0 {
		q.Class, q.Err = ClassFailed, lastLine(res.Stderr)
		return q, nil
	}
	var v struct {
		Output   []float64 `json:"output"`
		Rounds   int       `json:"rounds"`
		Sent     int64     `json:"bytes_sent"`
		Recv     int64     `json:"bytes_recv"`
		OnlineMs float64   `json:"online_ms"`
		TotalMs  float64   `json:"total_ms"`
		Dealer   string    `json:"dealer"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		q.Class, q.Err = ClassWrong, fmt.Sprintf("exit 0 without a readable answer: %v: %q", err, res.Stdout)
		return q, nil
	}
	q.Output, q.Rounds, q.Sent, q.Recv, q.OnlineMs, q.TotalMs, q.Dealer = v.Output, v.Rounds, v.Sent, v.Recv, v.OnlineMs, v.TotalMs, v.Dealer
	q.Class = Classify(0, v.Output, p.Expect, p.Tolerance)
	if q.Class == ClassWrong {
		q.Err = fmt.Sprintf("answer %v, want %v within %g", v.Output, p.Expect, p.Tolerance)
	}
	return q, nil
}

// churn runs the churn case: before each query, with probability Rate, one
// daemon leaves or a stopped one rejoins. Clear failures are expected while
// a holder is down; a wrong answer never is, and some answers must be right.
func (r *runner) churn(ctx context.Context, c *cluster, cl *clients, run *Run) error {
	ch := r.sc.Params.Churn
	rng := rand.New(rand.NewPCG(uint64(r.o.Seed), 0x636875726e)) // "churn"
	holder := map[int]bool{}
	for _, id := range run.ModelHolders {
		if i := c.index(id); i >= 0 {
			holder[i] = true
		}
	}
	down := []int{}
	for qi := range r.sc.Params.Queries {
		event := rng.Float64() < ch.Rate
		if event && rng.Float64() < ch.Arrive && c.size() < MaxInstances {
			t0 := time.Now()
			i, err := c.add(ctx)
			if err != nil {
				return fmt.Errorf("churn: arrival: %w", err)
			}
			ev := Event{BeforeQuery: qi, Kind: "arrive", Node: i}
			if d := c.daemon(i); d != nil {
				at, err := cl.waitOne(ctx, d, r.sc.Params.Model, t0)
				if err != nil {
					return fmt.Errorf("churn: new node%d: %w", i, err)
				}
				if !at.IsZero() {
					ev.CatchUpMs = ms(at.Sub(t0))
				}
			}
			run.Events = append(run.Events, ev)
			r.logf("churn: new node%d arrives before query %d and lists %s %.0f ms after its start", i, qi, r.sc.Params.Model, ev.CatchUpMs)
			event = false
		}
		if event {
			var up []int
			for _, i := range c.up() {
				if i != 0 && (!ch.HoldersOnly || holder[i]) {
					up = append(up, i)
				}
			}
			leave := len(down) == 0 || (len(down) < ch.MaxDown && len(up) > 0 && rng.IntN(2) == 0)
			if leave && len(up) > 0 {
				i := up[rng.IntN(len(up))]
				kind := "leave"
				if rng.Float64() < ch.Crash {
					kind = "crash"
					c.killOne(i)
				} else {
					c.stopOne(i)
				}
				down = append(down, i)
				run.Events = append(run.Events, Event{BeforeQuery: qi, Kind: kind, Node: i, Holder: holder[i]})
				r.logf("churn: node%d %s (holder %v) before query %d", i, map[string]string{"leave": "leaves", "crash": "crashes"}[kind], holder[i], qi)
			} else if len(down) > 0 {
				k := rng.IntN(len(down))
				i := down[k]
				if err := c.startOne(ctx, i); err != nil {
					return fmt.Errorf("churn: rejoin: %w", err)
				}
				down = slices.Delete(down, k, k+1)
				run.Events = append(run.Events, Event{BeforeQuery: qi, Kind: "join", Node: i, Holder: holder[i]})
				r.logf("churn: node%d rejoins (holder %v) before query %d", i, holder[i], qi)
			}
		}
		q, err := cl.query(ctx, r.sc.Params.Model, "mpc", qi)
		if err != nil {
			return err
		}
		q.Down = slices.Clone(down)
		slices.Sort(q.Down)
		run.Queries = append(run.Queries, q)
		r.logf("churn: query %d: %s %v %.0f ms %s", qi, q.Class, q.Output, q.WallMs, q.Err)
	}
	run.Finish()
	if run.Counts.Wrong > 0 {
		return fmt.Errorf("churn: %d wrong answers", run.Counts.Wrong)
	}
	if run.Counts.Right == 0 {
		return errors.New("churn: no right answer at all")
	}
	return nil
}

// lastLine returns the last non-empty line of s (a CLI's one-line error).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
