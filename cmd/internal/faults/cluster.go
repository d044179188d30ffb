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
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// Cluster is a dealer (daemon 0, also the bootstrap peer), holders
// (daemons 1..N) and a client repo, all on loopback: a harness.Swarm whose
// daemons have the dealer or holder role and a short session timeout.
type Cluster struct {
	*harness.Swarm
	Bin     string
	Dir     string
	Client  string // the client repo
	Timeout time.Duration

	mu    sync.Mutex
	procs []*harness.Proc
}

// StartCluster creates the repos under dir (session timeout written into
// each config), starts the dealer and the holders and waits until every
// daemon sees all the others. On error everything started is killed.
func StartCluster(ctx context.Context, bin, dir string, holders int, timeout time.Duration) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, Timeout: timeout, Client: filepath.Join(dir, "client")}
	setTimeout := func(_ int, repo string) error {
		return harness.SetSessions(repo, map[string]any{"Timeout": timeout.String()})
	}
	if _, err := harness.Init(ctx, bin, c.Client); err != nil {
		return nil, err
	}
	if err := setTimeout(-1, c.Client); err != nil {
		return nil, err
	}
	opts := harness.Options{Bin: bin, ReadyTimeout: 30 * time.Second, StopTimeout: 10 * time.Second}
	s, err := harness.NewSwarm(ctx, opts, dir, harness.SwarmConfig{
		N:    holders + 1,
		Args: []string{"--log-level", "info"},
		ArgsFor: func(i int) []string {
			if i == 0 {
				return []string{"--roles", "dealer"}
			}
			return []string{"--roles", "holder"}
		},
		Prepare: setTimeout,
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	c.Swarm = s
	return c, nil
}

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
	if c.Swarm != nil {
		c.Swarm.Close()
	}
}
