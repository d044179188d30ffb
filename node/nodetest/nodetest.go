// Package nodetest starts grid nodes in one process, on loopback: a
// cluster of a dealer (everyone's bootstrap peer), holders and client
// peers, for tests, grid demo and grid-load. It is grid's version of
// hashicorp/raft's testing.go MakeCluster; the nodes are ordinary
// *node.Node values with node.DefaultLocalConfig.
//
// # Usage
//
//  1. MakeCluster(ctx, dir, Config{Holders: 4, Clients: 1}) initialises a
//     repo per node under dir and starts the dealer, then the holders, then
//     the clients, which wait until they have joined the network.
//  2. A client publishes a model (plan.Seed is the acceptance example) and
//     queries it; Config.Edit adjusts any node's config before it starts.
//  3. StartHolder restarts a holder on its repo (after Close of that
//     holder) or starts one more; Close stops the whole cluster.
//
// Package node's own tests, which reach into the nodes' state, keep a thin
// cluster of their own (they cannot import this package).
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/gridmpc/grid/node"
)

// The kinds of node in a cluster, as Config.Edit names them.
const (
	Dealer = "dealer"
	Holder = "holder"
	Client = "client"
)

// Config describes a cluster.
type Config struct {
	// Holders is the number of holder nodes.
	Holders int
	// HolderRoles are the holders' roles (default: node.RoleHolder).
	HolderRoles []string
	// Clients is the number of client peers (node.Config.Client): a
	// model's owner and its users.
	Clients int
	// Logger receives the nodes' logs (default: discarded).
	Logger *slog.Logger
	// Edit, if set, adjusts each node's config before it starts: kind is
	// Dealer, Holder or Client and i the node's index among its kind.
	Edit func(kind string, i int, c *node.Config)
	// Bootstrap, if set, is the address (with /p2p/) of a peer of a
	// network that runs elsewhere, e.g. daemons: every node bootstraps
	// from it and MakeCluster starts no dealer.
	Bootstrap string
}

// Cluster is a running cluster. Its fields are the nodes as started; a
// restarted holder replaces its entry.
type Cluster struct {
	Dir     string
	Dealer  *node.Node   // role dealer, everyone's bootstrap peer (nil with Config.Bootstrap)
	Holders []*node.Node // HolderRoles
	Clients []*node.Node // client peers

	cfg Config
}

// StartNode starts a node on loopback in repo, Init'ing the repo first
// when init is set: node.DefaultLocalConfig adjusted by edit (if set).
func StartNode(ctx context.Context, repo string, init bool, edit func(*node.Config)) (*node.Node, error) {
	if init {
		if _, err := node.Init(repo, nil); err != nil {
			return nil, err
		}
	}
	cfg := node.DefaultLocalConfig(repo)
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", repo, err)
	}
	return n, nil
}

// MakeCluster starts a cluster in dir (one repo per node): the dealer
// (unless Config.Bootstrap is set), then the holders and the clients,
// which bootstrap from it; each client waits until it has joined the
// network. On error, what started is closed.
func MakeCluster(ctx context.Context, dir string, cfg Config) (_ *Cluster, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HolderRoles == nil {
		cfg.HolderRoles = []string{node.RoleHolder}
	}
	c := &Cluster{Dir: dir, cfg: cfg}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if cfg.Bootstrap == "" {
		if c.Dealer, err = c.start(ctx, Dealer, 0, true); err != nil {
			return c, err
		}
	}
	for i := range cfg.Holders {
		if _, err := c.StartHolder(ctx, i, true); err != nil {
			return c, err
		}
	}
	for i := range cfg.Clients {
		n, err := c.start(ctx, Client, i, true)
		if err != nil {
			return c, err
		}
		c.Clients = append(c.Clients, n)
		if err := n.Discovery().WaitReady(ctx); err != nil {
			return c, fmt.Errorf("client %d: wait for the network: %w", i, err)
		}
	}
	return c, nil
}

// Bootstrap is everyone's bootstrap peer: Config.Bootstrap, else the
// dealer's first address.
func (c *Cluster) Bootstrap() string {
	if c.cfg.Bootstrap != "" {
		return c.cfg.Bootstrap
	}
	return c.Dealer.Addrs()[0].String()
}

// StartHolder starts holder i on its repo, Init'ing it when init is set:
// holder len(Holders) is one more holder, a lower one replaces a holder
// (closed first by the caller).
func (c *Cluster) StartHolder(ctx context.Context, i int, init bool) (*node.Node, error) {
	n, err := c.start(ctx, Holder, i, init)
	if err != nil {
		return nil, err
	}
	if i < len(c.Holders) {
		c.Holders[i] = n
	} else {
		c.Holders = append(c.Holders, n)
	}
	return n, nil
}

// start starts node i of a kind in repo dir/KINDi, bootstrapped from
// Bootstrap: the dealer role, the holders' roles, or a client peer (no
// roles, no listening address).
func (c *Cluster) start(ctx context.Context, kind string, i int, init bool) (*node.Node, error) {
	repo := filepath.Join(c.Dir, fmt.Sprintf("%s%d", kind, i))
	return StartNode(ctx, repo, init, func(nc *node.Config) {
		nc.Logger = c.cfg.Logger.With("node", filepath.Base(repo))
		switch kind {
		case Dealer:
			nc.Roles = []string{node.RoleDealer}
		case Holder:
			nc.Roles = c.cfg.HolderRoles
		case Client:
			nc.Client, nc.Roles, nc.Listen = true, nil, nil
		}
		if kind != Dealer {
			nc.Bootstrap = []string{c.Bootstrap()}
		}
		if c.cfg.Edit != nil {
			c.cfg.Edit(kind, i, nc)
		}
	})
}

// Close stops every node, concurrently, and returns their errors joined.
func (c *Cluster) Close() error {
	nodes := append(append([]*node.Node{c.Dealer}, c.Holders...), c.Clients...)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
