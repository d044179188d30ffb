package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// NewClient makes a client repo root/name for one-shot commands against
// the swarm (grid init, then SwarmConfig.Prepare with i = -1) and returns
// its dir. Give each client peer a repo of its own.
func (s *Swarm) NewClient(ctx context.Context, name string) (string, error) {
	repo := filepath.Join(s.Root, name)
	if _, err := s.initRepo(ctx, -1, repo); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.clients = append(s.clients, repo)
	s.mu.Unlock()
	return repo, nil
}

// Env is the environment of a client command run with repo and
// bootstrapped from daemon 0 (GRID_PATH, GRID_BOOTSTRAP).
func (s *Swarm) Env(repo string) []string {
	return append(append([]string(nil), s.Opts.Env...), "GRID_PATH="+repo, "GRID_BOOTSTRAP="+s.Bootstrap())
}

// Grid runs a client command with repo to completion (Run with Env).
func (s *Swarm) Grid(ctx context.Context, repo string, args ...string) (Result, error) {
	return Run(ctx, s.Opts.Bin, s.Env(repo), args...)
}

// StartGrid starts a client command with repo in the background (Start
// with Env); Close kills it if it is still running.
func (s *Swarm) StartGrid(repo string, args ...string) (*Proc, error) {
	p, err := Start(s.Opts.Bin, s.Env(repo), args...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Metric reads one series (name with labels as exposed, e.g.
// `grid_sessions_active` or `grid_bytes_received_total{protocol="mpc"}`)
// from daemon i's metrics (Metric); a series not exposed reads as 0.
func (s *Swarm) Metric(ctx context.Context, i int, series string) (float64, error) {
	d := s.Daemon(i)
	if d == nil {
		return 0, fmt.Errorf("daemon %d is not running", i)
	}
	v, err := Metric(ctx, d.API, series)
	if err != nil {
		return 0, fmt.Errorf("daemon %d: %w", i, err)
	}
	return v, nil
}

// WaitMetric polls daemon i's series until ok accepts its value or ctx
// ends; it returns the last value read.
func (s *Swarm) WaitMetric(ctx context.Context, i int, series string, ok func(float64) bool) (float64, error) {
	for {
		v, err := s.Metric(ctx, i, series)
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

// RemoveRepos deletes the daemons' and the clients' repo dirs (their
// datastores), keeping the daemons' logs (repo+".log") beside them. Call it
// once every daemon is stopped.
func (s *Swarm) RemoveRepos() {
	s.mu.Lock()
	repos := append(slices.Clone(s.Repos), s.clients...)
	s.mu.Unlock()
	for _, r := range repos {
		if strings.HasPrefix(r, s.Root+string(filepath.Separator)) {
			_ = os.RemoveAll(r)
		}
	}
}
