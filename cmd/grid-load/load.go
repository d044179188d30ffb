package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node"
)

// Config describes a load run.
type Config struct {
	// Sessions is the number of inference sessions to run.
	Sessions int
	// Concurrency is how many of them run at once (0 = all).
	Concurrency int
	// Holders is the number of share holders of the seed model.
	Holders int
	// Clients is the number of client peers the sessions are spread over.
	Clients int
	// MaxSessions is each holder's and the dealer's concurrent-session
	// limit (node.Config.MaxSessions); sessions beyond it are refused busy.
	MaxSessions int
	// SessionTimeout bounds each session on every party.
	SessionTimeout time.Duration
	// Deadline bounds the whole run (setup, sessions and the leak check).
	Deadline time.Duration
	// Dealer is "network" (the client picks an advertised dealer), "self"
	// (each client deals its sessions) or "fixed" (the cluster's dealer,
	// by peer ID).
	Dealer string
	// Tolerance is the largest accepted |answer - exact|; anything else is
	// a wrong answer.
	Tolerance float64
	// GridBin, when set, runs the dealer and holders as "grid daemon"
	// processes of this binary; else they are nodes in this process.
	GridBin string
	// Dir holds the repos ("" = a temporary directory, removed after).
	Dir string
	// Logger receives the nodes' logs.
	Logger *slog.Logger
}

// DefaultConfig is the load: 200 concurrent sessions of the seed
// model against 4 holders.
func DefaultConfig() Config {
	return Config{
		Sessions: 200, Holders: 4, Clients: 4, MaxSessions: 256,
		SessionTimeout: 30 * time.Second, Deadline: 5 * time.Minute,
		Dealer: "fixed", Tolerance: 1e-3,
	}
}

// Validate checks the config; errors name the field.
func (c Config) Validate() error {
	switch {
	case c.Sessions < 1:
		return fmt.Errorf("sessions %d: want at least 1", c.Sessions)
	case c.Concurrency < 0:
		return fmt.Errorf("concurrency %d: want 0 (all) or more", c.Concurrency)
	case c.Holders < 2:
		return fmt.Errorf("holders %d: mpc needs at least 2", c.Holders)
	case c.Clients < 1:
		return fmt.Errorf("clients %d: want at least 1", c.Clients)
	case c.MaxSessions < 1:
		return fmt.Errorf("max-sessions %d: want at least 1", c.MaxSessions)
	case c.SessionTimeout <= 0:
		return fmt.Errorf("session-timeout %v: want a positive duration", c.SessionTimeout)
	case c.Deadline <= 0:
		return fmt.Errorf("deadline %v: want a positive duration", c.Deadline)
	case !slices.Contains([]string{"network", "self", "fixed"}, c.Dealer):
		return fmt.Errorf("dealer %q: want network, self or fixed", c.Dealer)
	case c.Tolerance < 0 || math.IsNaN(c.Tolerance):
		return fmt.Errorf("tolerance %v: want >= 0", c.Tolerance)
	}
	return nil
}

// Outcome classes of a session.
const (
	OK      = "ok"      // the exact answer (within Tolerance)
	Busy    = "busy"    // a clear node.ErrBusy refusal
	Timeout = "timeout" // the session timeout or the run's deadline
	Failed  = "error"   // any other error (a fault: the run fails)
	Wrong   = "wrong"   // an answer that is not the exact one (the run fails)
)

// Session is one session's outcome.
type Session struct {
	Input   [2]float64    `json:"input"`
	Outcome string        `json:"outcome"`
	Output  float64       `json:"output,omitempty"`
	Latency time.Duration `json:"latency_ns"`
	Online  time.Duration `json:"online_ns,omitempty"`
	Err     string        `json:"error,omitempty"`
}

// Report is the result of a run.
type Report struct {
	Mode        string         `json:"mode"` // in-process or daemons
	Sessions    int            `json:"sessions"`
	Concurrency int            `json:"concurrency"`
	Holders     int            `json:"holders"`
	Clients     int            `json:"clients"`
	MaxSessions int            `json:"max_sessions"`
	Dealer      string         `json:"dealer"`
	Counts      map[string]int `json:"counts"` // by outcome
	MaxAbsErr   float64        `json:"max_abs_error"`
	Elapsed     time.Duration  `json:"elapsed_ns"` // first session start to last end
	Throughput  float64        `json:"throughput"` // ok sessions per second
	P50         time.Duration  `json:"p50_ns"`
	P90         time.Duration  `json:"p90_ns"`
	P99         time.Duration  `json:"p99_ns"`
	Max         time.Duration  `json:"max_ns"`
	OnlineP50   time.Duration  `json:"online_p50_ns,omitempty"`
	Setup       time.Duration  `json:"setup_ns"`
	// Leak check after the run: every holder and the dealer back to 0
	// active sessions, and (in-process) the goroutine count.
	ActiveAfter      float64   `json:"active_after"`
	GoroutinesBefore int       `json:"goroutines_before,omitempty"`
	GoroutinesAfter  int       `json:"goroutines_after,omitempty"`
	Errors           []string  `json:"errors,omitempty"` // distinct non-ok messages, at most 10
	Runs             []Session `json:"-"`
}

// Healthy reports whether the run met the bar: no wrong answer, no error
// other than busy/timeout, and no session left active.
func (r *Report) Healthy() bool {
	return r.Counts[Wrong] == 0 && r.Counts[Failed] == 0 && r.ActiveAfter == 0
}

// Run starts the cluster, publishes the seed model, runs the sessions and
// checks that the holders freed them.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 || cfg.Concurrency > cfg.Sessions {
		cfg.Concurrency = cfg.Sessions
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "grid-load-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	setupStart := time.Now()
	c, err := startCluster(ctx, cfg, dir, log)
	if err != nil {
		return nil, err
	}
	defer c.close()
	model, dealer, err := prepare(ctx, c, cfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Mode: c.mode, Sessions: cfg.Sessions, Concurrency: cfg.Concurrency, Holders: cfg.Holders,
		Clients: cfg.Clients, MaxSessions: cfg.MaxSessions, Dealer: cfg.Dealer,
		Counts: map[string]int{OK: 0, Busy: 0, Timeout: 0, Failed: 0, Wrong: 0},
		Setup:  time.Since(setupStart),
	}
	if c.mode == "in-process" {
		rep.GoroutinesBefore = runtime.NumGoroutine()
	}
	start := time.Now()
	runs := runSessions(ctx, c, cfg, model, dealer)
	rep.Elapsed = time.Since(start)
	rep.Runs = runs
	summarise(rep, runs)

	// Leak check: every server back to 0 active sessions.
	apis := append([]string{c.dealerAPI}, c.holderAPI...)
	rep.ActiveAfter, err = waitIdle(ctx, apis, cfg.SessionTimeout+5*time.Second)
	if err != nil {
		return rep, err
	}
	if c.mode == "in-process" {
		rep.GoroutinesAfter = settleGoroutines(rep.GoroutinesBefore, 5*time.Second)
	}
	return rep, nil
}

// prepare publishes the seed model, waits until every client knows it and
// runs one warm-up query, so that connections and the dealer's weight
// masks are set up before the clock starts. It returns the model's id and
// the dealer option of the sessions.
func prepare(ctx context.Context, c *cluster, cfg Config) (string, string, error) {
	p, w := seedModel()
	m, err := c.clients[0].Publish(ctx, "seed", p, w, node.PublishOptions{Holders: cfg.Holders})
	if err != nil {
		return "", "", fmt.Errorf("publish the seed model: %w", err)
	}
	for i, cl := range c.clients[1:] {
		if err := waitModel(ctx, cl, m.ID); err != nil {
			return "", "", fmt.Errorf("client %d: %w", i+1, err)
		}
	}
	dealer := dealerOption(cfg.Dealer, c.dealerID)
	if err := warmUp(ctx, c.clients[0], m.ID, dealer); err != nil {
		return "", "", err
	}
	return m.ID, dealer, nil
}

// warmUp runs the warm-up query. The dealer's warm session (it opens its
// weight masks right after the publish) takes a session slot at every
// holder, so with a small --max-sessions the query may be refused as busy
// until it ends: busy is retried, every 100 ms for up to 30 s.
func warmUp(ctx context.Context, cl *node.Node, model, dealer string) error {
	var err error
	for range 300 {
		if _, err = cl.Infer(ctx, model, vec(5, 3), node.InferOptions{Dealer: dealer}); !errors.Is(err, node.ErrBusy) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("warm-up query: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("warm-up query: %w", err)
	}
	return nil
}

// runSessions runs cfg.Sessions sessions, cfg.Concurrency at a time, over
// the clients in turn.
func runSessions(ctx context.Context, c *cluster, cfg Config, model, dealer string) []Session {
	runs := make([]Session, cfg.Sessions)
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range runs {
		// Inputs on a quarter grid (exact in fixed point) in [-32, 32).
		a, b := float64((i*37)%256-128)/4, float64((i*91+13)%256-128)/4
		runs[i].Input = [2]float64{a, b}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			runs[i] = runSession(ctx, c.clients[i%len(c.clients)], model, a, b, dealer, cfg.Tolerance)
		}()
	}
	wg.Wait()
	return runs
}

// dealerOption maps Config.Dealer to node.InferOptions.Dealer.
func dealerOption(mode, dealerID string) string {
	switch mode {
	case "self":
		return node.DealerSelf
	case "fixed":
		return dealerID
	}
	return ""
}

func vec(v ...float64) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: []int{len(v)}, Data: v}
}

// runSession runs one query and classifies its outcome.
func runSession(ctx context.Context, cl *node.Node, model string, a, b float64, dealer string, tol float64) Session {
	s := Session{Input: [2]float64{a, b}}
	start := time.Now()
	res, err := cl.Infer(ctx, model, vec(a, b), node.InferOptions{Dealer: dealer})
	s.Latency = time.Since(start)
	switch {
	case err == nil:
		s.Online = res.Online
		if len(res.Output) != 1 {
			s.Outcome, s.Err = Wrong, fmt.Sprintf("output %v (shape %v), want one value", res.Output, res.Shape)
			return s
		}
		s.Output = res.Output[0]
		if math.Abs(s.Output-seedAnswer(a, b)) > tol {
			s.Outcome, s.Err = Wrong, fmt.Sprintf("input (%g, %g): answer %g, want %g", a, b, s.Output, seedAnswer(a, b))
			return s
		}
		s.Outcome = OK
	case errors.Is(err, node.ErrBusy):
		s.Outcome, s.Err = Busy, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		s.Outcome, s.Err = Timeout, err.Error()
	default:
		s.Outcome, s.Err = Failed, err.Error()
	}
	return s
}

// summarise fills the counts, throughput and latency percentiles.
func summarise(rep *Report, runs []Session) {
	var lat, online []time.Duration
	seen := map[string]bool{}
	for _, r := range runs {
		rep.Counts[r.Outcome]++
		if r.Outcome == OK {
			lat = append(lat, r.Latency)
			online = append(online, r.Online)
			rep.MaxAbsErr = max(rep.MaxAbsErr, math.Abs(r.Output-seedAnswer(r.Input[0], r.Input[1])))
		} else if !seen[r.Err] && len(rep.Errors) < 10 {
			seen[r.Err] = true
			rep.Errors = append(rep.Errors, r.Outcome+": "+r.Err)
		}
	}
	if rep.Elapsed > 0 {
		rep.Throughput = float64(len(lat)) / rep.Elapsed.Seconds()
	}
	slices.Sort(lat)
	slices.Sort(online)
	rep.P50, rep.P90, rep.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	rep.OnlineP50 = percentile(online, 0.50)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
}

// percentile is the nearest-rank percentile of sorted durations (0 when
// there are none).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// waitModel waits until a client knows the model.
func waitModel(ctx context.Context, n *node.Node, id string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := n.Discovery().Lookup(lctx, id)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("model %q never listed: %w", id, err)
		case <-tick.C:
		}
	}
}

// waitIdle polls grid_sessions_active on every server until all read 0 or
// the wait ends; it returns the sum of the last readings.
func waitIdle(ctx context.Context, apis []string, wait time.Duration) (float64, error) {
	deadline := time.Now().Add(wait)
	for {
		var sum float64
		for _, api := range apis {
			v, err := harness.Metric(ctx, api, "grid_sessions_active")
			if err != nil {
				return 0, err
			}
			sum += v
		}
		if sum == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return sum, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settleGoroutines waits (at most wait) for the goroutine count to come
// back within 10% (plus 20) of before, and returns the last count.
func settleGoroutines(before int, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= before+before/10+20 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}
