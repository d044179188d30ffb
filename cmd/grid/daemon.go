package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/cmd/grid/web"
	"github.com/gridmpc/grid/node"
)

func (c *cli) daemonCmd() *cobra.Command {
	var (
		listen, announce, bootstrap, roles []string
		api, logLevel                      string
	)
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a grid node until SIGINT/SIGTERM",
		Long: `Run the node of the repo: a libp2p host in DHT server mode that serves its
roles (holder: stores weight shares and runs MPC sessions; dealer: deals
correlated randomness; host: serves plain models) and a local HTTP API
(/api/v0/id, /api/v0/peers, /api/v0/shutdown, /debug/metrics/prometheus; its address goes in
the repo's "api" file) that also serves the browser client: a page at "/"
that lists the models and queries them privately from the browser, over
libp2p WebSockets (the daemon needs a /ws listen address, in the default
config), and the ES module "/grid.js" (docs/BROWSER.md). Flags override the
repo's config for this run.

It prints its peer ID, one "listening on MULTIADDR" line per address, the
API address and the page's URL, then "daemon is ready"; logs go to stderr. SIGINT or SIGTERM
shut it down cleanly (exit 0).`,
		Example: `  grid daemon --listen /ip4/127.0.0.1/tcp/4301
  grid daemon --repo /tmp/n2 --bootstrap /ip4/127.0.0.1/tcp/4301/p2p/12D3KooW... --roles holder`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			level, err := parseLevel(logLevel)
			if err != nil {
				return err
			}
			cfg, err := c.loadRepoConfig()
			if err != nil {
				return err
			}
			if ls := splitList(listen); len(ls) > 0 {
				cfg.Listen = ls
			}
			if as := splitList(announce); len(as) > 0 {
				cfg.Announce = as
			}
			if bs := splitList(bootstrap); len(bs) > 0 {
				if err := checkPeerAddrs("--bootstrap", bs); err != nil {
					return err
				}
				cfg.Bootstrap = bs
			}
			if rs := splitList(roles); cmd.Flags().Changed("roles") {
				cfg.Roles = rs
			}
			if cmd.Flags().Changed("api") {
				cfg.APIAddr = api
				if api == "none" {
					cfg.APIAddr = ""
				}
			}
			cfg.Web = web.Handler()
			logs := &gate{w: c.stderr}
			cfg.Logger = newLogger(logs, level, false)
			setLibraryLogs(c.getenv, c.stderr, level)
			if err := cfg.Validate(); err != nil {
				return badInput(err)
			}
			// grid shutdown (the API's /api/v0/shutdown) stops it as SIGTERM does.
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			cfg.Shutdown = stop
			return c.runDaemon(ctx, cfg, logs)
		}),
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&listen, "listen", nil, "listen multiaddr (repeatable; default from the repo's config)")
	fs.StringSliceVar(&announce, "announce", nil, "address to announce instead of the listen addresses (repeatable)")
	fs.StringSliceVar(&bootstrap, "bootstrap", nil, "bootstrap peer multiaddr with /p2p/ (repeatable; default from the repo's config)")
	fs.StringSliceVar(&roles, "roles", nil, "roles to serve: holder,dealer,host (default from the repo's config: all)")
	fs.StringVar(&api, "api", "", `HTTP API host:port, e.g. 127.0.0.1:5001 ("none" turns it off; default from the repo's config)`)
	fs.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	return cmd
}

// runDaemon starts the node, prints the ready protocol (see
// cmd/internal/harness), and runs until ctx ends (SIGINT/SIGTERM).
func (c *cli) runDaemon(ctx context.Context, cfg node.Config, logs *gate) error {
	n, err := node.New(ctx, cfg)
	if err != nil {
		logs.open() // what the failed start logged, before grid's line
		if errors.Is(err, node.ErrRepoLocked) {
			return fmt.Errorf("%w (is another daemon running on this repo?)", err)
		}
		if errors.Is(err, node.ErrAddrInUse) {
			return err // "listen address MA: address already in use by another process ..."
		}
		return fmt.Errorf("start node: %w", err)
	}
	fmt.Fprintf(c.stdout, "peer ID %s\n", n.ID())
	for _, a := range n.Addrs() {
		fmt.Fprintf(c.stdout, "listening on %s\n", a)
	}
	if cfg.APIAddr != "" {
		if b, err := os.ReadFile(filepath.Join(cfg.RepoDir, node.APIFile)); err == nil {
			fmt.Fprintf(c.stdout, "API server listening on %s\n", strings.TrimSpace(string(b)))
			if cfg.Web != nil {
				fmt.Fprintf(c.stdout, "browser page at http://%s/\n", strings.TrimSpace(string(b)))
			}
		}
	}
	fmt.Fprintln(c.stdout, "daemon is ready")
	logs.open() // the start's logs after the banner
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("shut down: %w", err)
		}
	case <-time.After(15 * time.Second):
		return errors.New("shut down: node did not close within 15s")
	}
	cfg.Logger.Info("stopped")
	return nil
}

// parseLevel parses a --log-level value; "off" silences logs.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "off", "none":
		return slog.LevelError + 100, nil
	}
	return 0, usageErrorf("--log-level %q is not one of debug, info, warn, error, off", s)
}
