package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node"
)

// seedModel is the seed acceptance model built in code (the same network
// as testdata/seed.onnx, torch nn.Linear(2, 1)): input [2], W [[2], [4]],
// bias [1000], so (a, b) -> 2a + 4b + 1000.
func seedModel() (*plan.Plan, plan.Weights) {
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "input", Shape: []int{2}},
		Output:  "output",
		Weights: []plan.Value{{Name: "W", Shape: []int{2, 1}}, {Name: "B", Shape: []int{1}}},
		Nodes:   []plan.Node{{Name: "fc", Op: plan.MatMul, Inputs: []string{"input", "W", "B"}, Output: "output"}},
	}
	w := plan.Weights{
		"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{2, 4}},
		"B": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{1000}},
	}
	return p, w
}

// seedAnswer is the exact answer of the seed model.
func seedAnswer(a, b float64) float64 { return 2*a + 4*b + 1000 }

// cluster is a bootstrap/dealer peer, the holders and the client peers that
// run the sessions, either all in this process (node API) or as "grid
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

// startNode initialises a repo and starts a node on loopback.
func startNode(ctx context.Context, repo string, edit func(*node.Config), log *slog.Logger) (*node.Node, error) {
	if _, err := node.Init(repo, nil); err != nil {
		return nil, err
	}
	cfg, err := node.LoadConfig(repo)
	if err != nil {
		return nil, err
	}
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.APIAddr = ""
	cfg.Logger = log.With("repo", filepath.Base(repo))
	edit(&cfg)
	n, err := node.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", repo, err)
	}
	return n, nil
}

// startCluster starts the cluster described by cfg under dir.
func startCluster(ctx context.Context, cfg Config, dir string, log *slog.Logger) (_ *cluster, err error) {
	c := &cluster{mode: "in-process"}
	defer func() {
		if err != nil {
			_ = c.close()
		}
	}()
	var boot string
	if cfg.GridBin == "" {
		boot, err = c.startInProcess(ctx, cfg, dir, log)
	} else {
		c.mode = "daemons"
		boot, err = c.startDaemons(ctx, cfg, dir)
	}
	if err != nil {
		return nil, err
	}
	for i := range cfg.Clients {
		n, err := startNode(ctx, filepath.Join(dir, fmt.Sprintf("client%d", i)), func(nc *node.Config) {
			nc.Client, nc.Roles, nc.Listen = true, nil, nil
			nc.Bootstrap = []string{boot}
			nc.SessionTimeout = cfg.SessionTimeout
			nc.MaxSessions = max(cfg.MaxSessions, cfg.Sessions)
		}, log)
		if err != nil {
			return nil, err
		}
		c.onClose(n.Close)
		c.clients = append(c.clients, n)
		if err := n.Discovery().WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("client %d: wait for the network: %w", i, err)
		}
	}
	return c, nil
}

// startInProcess starts the dealer (bootstrap) and holder nodes in this
// process, each with its HTTP API for the leak check. It returns the
// bootstrap address.
func (c *cluster) startInProcess(ctx context.Context, cfg Config, dir string, log *slog.Logger) (string, error) {
	limits := func(nc *node.Config) {
		nc.SessionTimeout = cfg.SessionTimeout
		nc.MaxSessions = cfg.MaxSessions
		nc.APIAddr = "127.0.0.1:0"
	}
	boot, err := startNode(ctx, filepath.Join(dir, "dealer"), func(nc *node.Config) {
		limits(nc)
		nc.Roles = []string{node.RoleDealer}
	}, log)
	if err != nil {
		return "", err
	}
	c.onClose(boot.Close)
	c.dealerID, c.dealerAPI = boot.ID().String(), boot.APIAddr()
	bootAddr := boot.Addrs()[0].String()
	for i := range cfg.Holders {
		h, err := startNode(ctx, filepath.Join(dir, fmt.Sprintf("holder%d", i)), func(nc *node.Config) {
			limits(nc)
			nc.Roles = []string{node.RoleHolder}
			nc.Bootstrap = []string{bootAddr}
		}, log)
		if err != nil {
			return "", err
		}
		c.onClose(h.Close)
		c.holderAPI = append(c.holderAPI, h.APIAddr())
	}
	return bootAddr, nil
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
