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
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// Cluster is a dealer (daemon 0, also the bootstrap peer), holders
// (daemons 1..N) and a client repo, all on loopback: a harness.Swarm whose
// daemons have the dealer or holder role and a short session timeout.
type Cluster struct {
	*harness.Swarm
	Client string // the client repo
}

// StartCluster creates the repos under dir (session timeout written into
// each config), starts the dealer and the holders and waits until every
// daemon sees all the others. On error everything started is killed; on
// success the caller must Close the cluster.
func StartCluster(ctx context.Context, bin, dir string, holders int, timeout time.Duration) (*Cluster, error) {
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
		Prepare: func(_ int, repo string) error {
			return harness.SetSessions(repo, map[string]any{"Timeout": timeout.String()})
		},
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	client, err := s.NewClient(ctx, "client")
	if err != nil {
		s.Close()
		return nil, err
	}
	return &Cluster{Swarm: s, Client: client}, nil
}

// Grid runs a client command to completion.
func (c *Cluster) Grid(ctx context.Context, args ...string) (harness.Result, error) {
	return c.Swarm.Grid(ctx, c.Client, args...)
}

// StartGrid starts a client command in the background; Close kills it if
// it is still running.
func (c *Cluster) StartGrid(args ...string) (*harness.Proc, error) {
	return c.Swarm.StartGrid(c.Client, args...)
}
