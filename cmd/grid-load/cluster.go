package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// seedModel is the seed acceptance model (plan.Seed, the function of
// testdata/seed.onnx, the seed's fc1.matmul(x) + bias): (a, b) -> 2a + 4b
// + 1000.
func seedModel() (*plan.Plan, plan.Weights) { return plan.Seed() }

// seedAnswer is the exact answer of the seed model.
func seedAnswer(a, b float64) float64 { return plan.SeedAnswer(a, b) }

// cluster is a bootstrap/dealer peer, the holders and the client peers that
// run the sessions, either all in this process (nodetest) or as "grid
// daemon" processes (cmd/internal/harness) with in-process clients.
type cluster struct {
	clients   []*node.Node
	dealerID  string   // the dealer peer's ID
	holderAPI []string // each holder's HTTP API host:port
	dealerAPI string
	mode      string // "in-process" or "daemons"

	mu      sync.Mutex
	closers []func() error
}

// close stops everything the cluster started (in reverse order).
func (c *cluster) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		if err := c.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	c.closers = nil
	return errors.Join(errs...)
}

func (c *cluster) onClose(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closers = append(c.closers, f)
}

// startCluster starts the cluster described by cfg under dir.
func startCluster(ctx context.Context, cfg Config, dir string, log *slog.Logger) (_ *cluster, err error) {
	c := &cluster{mode: "in-process"}
	defer func() {
		if err != nil {
			_ = c.close()
		}
	}()
	nc := nodetest.Config{Clients: cfg.Clients, Logger: log, Edit: func(kind string, _ int, n *node.Config) {
		n.SessionTimeout, n.MaxSessions = cfg.SessionTimeout, cfg.MaxSessions
		if kind == nodetest.Client {
			n.MaxSessions = max(cfg.MaxSessions, cfg.Sessions)
		} else {
			n.APIAddr = "127.0.0.1:0" // for the leak check
		}
	}}
	if cfg.GridBin == "" {
		nc.Holders = cfg.Holders
	} else {
		c.mode = "daemons"
		if nc.Bootstrap, err = c.startDaemons(ctx, cfg, dir); err != nil {
			return nil, err
		}
	}
	nodes, err := nodetest.MakeCluster(ctx, dir, nc)
	if err != nil {
		return nil, err
	}
	c.onClose(nodes.Close)
	c.clients = nodes.Clients
	if nodes.Dealer != nil {
		c.dealerID, c.dealerAPI = nodes.Dealer.ID().String(), nodes.Dealer.APIAddr()
		for _, h := range nodes.Holders {
			c.holderAPI = append(c.holderAPI, h.APIAddr())
		}
	}
	return c, nil
}

// startDaemons starts the dealer (daemon 0, the bootstrap peer) and the
// holders as "grid daemon" processes (a harness.Swarm), with the session
// limits written into their repo configs.
func (c *cluster) startDaemons(ctx context.Context, cfg Config, dir string) (string, error) {
	opts := harness.Options{Bin: cfg.GridBin, ReadyTimeout: 30 * time.Second, StopTimeout: 10 * time.Second}
	s, err := harness.NewSwarm(ctx, opts, dir, harness.SwarmConfig{
		N:    cfg.Holders + 1,
		Args: []string{"--log-level", "warn"},
		ArgsFor: func(i int) []string {
			if i == 0 {
				return []string{"--roles", node.RoleDealer}
			}
			return []string{"--roles", node.RoleHolder}
		},
		Prepare: func(_ int, repo string) error {
			return harness.SetSessions(repo, map[string]any{"Timeout": cfg.SessionTimeout.String(), "Max": cfg.MaxSessions})
		},
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		return "", err
	}
	c.onClose(func() error { s.Close(); return nil })
	for i := range cfg.Holders + 1 {
		d := s.Daemon(i)
		if i == 0 {
			c.dealerID, c.dealerAPI = d.ID, d.API
		} else {
			c.holderAPI = append(c.holderAPI, d.API)
		}
	}
	return s.Bootstrap(), nil
}
