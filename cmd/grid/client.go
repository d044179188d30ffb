package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridmpc/grid/node"
)

// clientFlags are the flags every client command (publish, models, infer,
// unpublish) shares.
type clientFlags struct {
	bootstrap []string
	timeout   time.Duration
	logLevel  string
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.bootstrap, "bootstrap", nil, "bootstrap peer multiaddr with /p2p/ (repeatable; default $GRID_BOOTSTRAP, else the repo's config)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long")
	fs.StringVar(&f.logLevel, "log-level", "off", "log level on stderr: debug, info, warn, error, off")
}

// client is a one-shot libp2p peer for a client command, with the
// command's deadline.
type client struct {
	*node.Node
	ctx    context.Context
	cancel context.CancelFunc
}

// Close stops the peer and releases the deadline.
func (cl *client) Close() {
	_ = cl.Node.Close()
	cl.cancel()
}

// openClient starts the repo's identity as a one-shot client peer
// (node.Config{Client: true}: DHT client mode, no roles, no API, no repo
// lock, so it also works next to a daemon on another repo) bootstrapped
// from the flags, $GRID_BOOTSTRAP or the repo's config.
func (c *cli) openClient(cmd *cobra.Command, f *clientFlags) (*client, error) {
	if f.timeout <= 0 {
		return nil, usageErrorf("--timeout %v must be positive", f.timeout)
	}
	level, err := parseLevel(f.logLevel)
	if err != nil {
		return nil, err
	}
	cfg, err := c.loadRepoConfig()
	if err != nil {
		return nil, err
	}
	if bs := c.bootstrapFrom(f.bootstrap); len(bs) > 0 {
		if err := checkPeerAddrs("--bootstrap", bs); err != nil {
			return nil, err
		}
		cfg.Bootstrap = bs
	}
	if len(cfg.Bootstrap) == 0 {
		return nil, usageErrorf("no bootstrap peers: pass --bootstrap MULTIADDR, set $%s, or add them to %s's config (grid init --bootstrap)", envBootstrap, cfg.RepoDir)
	}
	if err := probeBootstrap(cmd.Context(), cfg.Bootstrap); err != nil {
		return nil, err
	}
	cfg.Client = true
	cfg.Roles = nil
	cfg.APIAddr = ""
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Announce = nil
	cfg.Logger = newLogger(c.stderr, level, false)
	setLibraryLogs(c.getenv, c.stderr, level)
	if err := cfg.Validate(); err != nil {
		return nil, badInput(err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	n, err := node.New(ctx, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("join the network: %w", c.explain(ctx, err, f.timeout))
	}
	cl := &client{Node: n, ctx: ctx, cancel: cancel}
	// Wait for a DHT peer and pull the peers' catalogs, but give up on
	// unreachable bootstrap peers sooner than the whole command's timeout.
	wait := min(f.timeout, bootstrapWait)
	wctx, wcancel := context.WithTimeout(ctx, wait)
	err = n.Discovery().WaitReady(wctx)
	wcancel()
	if err != nil {
		cl.Close()
		if cmd.Context().Err() == nil && wctx.Err() != nil {
			return nil, fmt.Errorf("no bootstrap peer reachable within %v (bootstrap %s)", wait, strings.Join(cfg.Bootstrap, ", "))
		}
		return nil, fmt.Errorf("join the network: %w", c.explain(ctx, err, f.timeout))
	}
	return cl, nil
}

// bootstrapWait bounds how long a client command waits for its bootstrap
// peers.
const bootstrapWait = 20 * time.Second

// explain rewords a context error from a client command.
func (c *cli) explain(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("timed out after %v (raise --timeout): %w", timeout, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return err
}

// nodeError maps node errors to exit codes: bad input is exit 2, the rest 1.
func nodeError(err error) error {
	err = offlineError(err)
	if errors.Is(err, node.ErrBadInput) || errors.Is(err, node.ErrModeMismatch) {
		return badInput(err)
	}
	return err
}
