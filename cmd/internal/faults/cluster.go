// Package faults holds the end-to-end fault tests of grid (issue 5): real
// "grid daemon" processes on loopback, started with cmd/internal/harness,
// and one-shot "grid" client commands, with faults injected from outside:
// SIGKILL of a holder, the dealer or the client before or during a
// session, SIGKILL of a holder while the owner uploads its shares, and a
// corrupted share or a truncated datastore on disk. The tests observe the
// daemons only as a user would: exit codes and stderr of the commands, the
// daemons' logs, and their HTTP API and Prometheus metrics.
//
// This file is the small cluster the tests drive: daemon 0 is the
// bootstrap peer and the dealer, daemons 1..N are holders, and a client
// repo runs the commands; every repo's config carries a short session
// timeout. docs/RELIABILITY.md lists the tests and their figures.
package faults

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// Cluster is a dealer (daemon 0, also the bootstrap peer), holders
// (daemons 1..N) and a client repo, all on loopback.
type Cluster struct {
	Bin     string
	Dir     string
	Opts    harness.Options
	Repos   []string // daemon i's repo dir
	IDs     []string // daemon i's peer ID
	Client  string   // the client repo
	Timeout time.Duration

	daemons harness.Daemons // daemon i, nil while stopped
	mu      sync.Mutex
	listen  [][]string // daemon i's listen addresses, reused on restart
	boot    string
	procs   []*harness.Proc
}

// StartCluster creates the repos under dir (session timeout written into
// each config), starts the dealer and the holders and waits until every
// daemon sees all the others. On error everything started is killed.
func StartCluster(ctx context.Context, bin, dir string, holders int, timeout time.Duration) (_ *Cluster, err error) {
	c := &Cluster{Bin: bin, Dir: dir, Timeout: timeout,
		Opts: harness.Options{Bin: bin, ReadyTimeout: 30 * time.Second, StopTimeout: 10 * time.Second}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	n := holders + 1
	c.Repos, c.IDs = make([]string, n), make([]string, n)
	c.daemons.Grow(n)
	c.listen = make([][]string, n)
	for i := range n {
		c.Repos[i] = filepath.Join(dir, fmt.Sprintf("d%d", i))
		if c.IDs[i], err = harness.Init(ctx, bin, c.Repos[i]); err != nil {
			return nil, err
		}
		if err := harness.SetSessions(c.Repos[i], map[string]any{"Timeout": timeout.String()}); err != nil {
			return nil, err
		}
	}
	c.Client = filepath.Join(dir, "client")
	if _, err := harness.Init(ctx, bin, c.Client); err != nil {
		return nil, err
	}
	if err := harness.SetSessions(c.Client, map[string]any{"Timeout": timeout.String()}); err != nil {
		return nil, err
	}
	for i := range n {
		if _, err := c.Start(ctx, i); err != nil {
			return nil, err
		}
	}
	if err := c.WaitPeers(ctx, n-1); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts daemon i from its repo dir: on the addresses it listened on
// before (so the bootstrap address and the peers' address books stay
// valid), with the dealer role for daemon 0 and the holder role else.
func (c *Cluster) Start(ctx context.Context, i int) (*harness.Daemon, error) {
	return c.StartWith(ctx, i, nil)
}

// StartWith is Start with other listen addresses (nil: the usual ones) and
// extra daemon flags (e.g. --announce).
func (c *Cluster) StartWith(ctx context.Context, i int, listen []string, extra ...string) (*harness.Daemon, error) {
	if c.daemons.Get(i) != nil {
		return nil, fmt.Errorf("daemon %d is running", i)
	}
	c.mu.Lock()
	if listen == nil {
		listen = c.listen[i]
	}
	boot, roles := "", "dealer"
	if i > 0 {
		boot, roles = c.boot, "holder"
	}
	args := append(harness.LoopbackFlags(listen, nil, boot), "--log-level", "info", "--roles", roles)
	args = append(args, extra...)
	c.mu.Unlock()
	d, err := harness.StartDaemon(ctx, c.Opts, c.Repos[i], args...)
	if err != nil {
		return nil, err
	}
	c.daemons.Set(i, d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.listen[i]) == 0 {
		c.listen[i] = harness.TransportAddrs(d.Addrs)
	}
	if i == 0 && c.boot == "" {
		c.boot = d.Addr()
	}
	return d, nil
}

// Daemon returns daemon i (nil while it is stopped).
func (c *Cluster) Daemon(i int) *harness.Daemon { return c.daemons.Get(i) }

// Bootstrap is daemon 0's address.
func (c *Cluster) Bootstrap() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boot
}

// Kill sends SIGKILL to daemon i and waits until it is gone.
func (c *Cluster) Kill(i int) { c.daemons.Kill(i) }

// Stop stops daemon i cleanly (SIGTERM).
func (c *Cluster) Stop(i int) error { return c.daemons.Stop(i) }

// WaitPeers waits until every running daemon sees at least min peers.
func (c *Cluster) WaitPeers(ctx context.Context, min int) error {
	return c.daemons.WaitPeers(ctx, min)
}

// Index returns the daemon whose peer ID is id, or -1.
func (c *Cluster) Index(id string) int { return slices.Index(c.IDs, id) }

// env is the client commands' environment.
func (c *Cluster) env() []string {
	return []string{"GRID_PATH=" + c.Client, "GRID_BOOTSTRAP=" + c.Bootstrap()}
}

// Grid runs a client command to completion.
func (c *Cluster) Grid(ctx context.Context, args ...string) (harness.Result, error) {
	return harness.Run(ctx, c.Bin, c.env(), args...)
}

// StartGrid starts a client command in the background (harness.Start);
// Close kills it if it is still running.
func (c *Cluster) StartGrid(args ...string) (*harness.Proc, error) {
	p, err := harness.Start(c.Bin, c.env(), args...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// Metric reads one series (name with labels as exposed, e.g.
// `grid_sessions_active` or `grid_bytes_received_total{protocol="mpc"}`)
// from daemon i's metrics (harness.Metric); a series not exposed reads as 0.
func (c *Cluster) Metric(ctx context.Context, i int, series string) (float64, error) {
	d := c.Daemon(i)
	if d == nil {
		return 0, fmt.Errorf("daemon %d is not running", i)
	}
	v, err := harness.Metric(ctx, d.API, series)
	if err != nil {
		return 0, fmt.Errorf("daemon %d: %w", i, err)
	}
	return v, nil
}

// WaitMetric polls daemon i's series until ok accepts its value or ctx
// ends; it returns the last value read.
func (c *Cluster) WaitMetric(ctx context.Context, i int, series string, ok func(float64) bool) (float64, error) {
	var v float64
	var err error
	for {
		v, err = c.Metric(ctx, i, series)
		if err == nil && ok(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return v, fmt.Errorf("daemon %d: %s = %g: %w", i, series, v, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close kills every daemon and background command still running.
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	c.daemons.Close()
}
