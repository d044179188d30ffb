package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/node"
)

// apiTimeout bounds a request to the local daemon's HTTP API.
const apiTimeout = 10 * time.Second

// errNoDaemon is daemonDo's error when the repo has no api file.
var errNoDaemon = errors.New("no daemon running")

// daemonGet fetches path from the HTTP API of the daemon running on the
// repo (its address is in the repo's api file) and decodes the JSON answer.
func (c *cli) daemonGet(ctx context.Context, path string, v any) error {
	return c.daemonDo(ctx, http.MethodGet, path, v)
}

// daemonDo is daemonGet with a method.
func (c *cli) daemonDo(ctx context.Context, method, path string, v any) error {
	repo, err := c.repoDir()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(repo, node.APIFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w on repo %s (no api file): start one with \"grid daemon\"", errNoDaemon, repo)
	}
	if err != nil {
		return fmt.Errorf("read api file: %w", err)
	}
	addr := strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("api address %q in %s: %w", addr, filepath.Join(repo, node.APIFile), err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("daemon API at %s not answering (is the daemon of %s running?): %w", addr, repo, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read daemon API answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon API %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode daemon API answer %s: %w", path, err)
	}
	return nil
}

// apiCmd is a command that shows what the running daemon's HTTP API
// answers at path, decoded into a T: the JSON with --json, else text.
// prepare, if set, adjusts the answer first.
func apiCmd[T any](c *cli, use, short, path string, prepare func(*T), text func(io.Writer, *T)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var v T
			if err := c.daemonGet(cmd.Context(), path, &v); err != nil {
				return err
			}
			if prepare != nil {
				prepare(&v)
			}
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			text(c.stdout, &v)
			return nil
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (c *cli) idCmd() *cobra.Command {
	cmd := apiCmd(c, "id", "Show the peer ID, addresses and roles (the daemon's, else the repo's)", "/api/v0/id", nil,
		func(w io.Writer, info *node.IDInfo) {
			fmt.Fprintf(w, "peer ID %s\nroles %s\n", info.ID, strings.Join(info.Roles, ","))
			for _, a := range info.Addresses {
				fmt.Fprintf(w, "address %s\n", a)
			}
		})
	cmd.Long = `Show the peer ID, roles and addresses of the daemon running on the repo
(through its HTTP API: "address MULTIADDR" lines, dialable). With no daemon
running, grid id works offline from the repo: the peer ID, the roles and
the configured listen addresses ("listen MULTIADDR" lines), then an
"offline: ..." line; --json then has "online": false.`
	online := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		err := online(cmd, args)
		if errors.Is(err, errNoDaemon) {
			asJSON, _ := cmd.Flags().GetBool("json")
			return runE(func(*cobra.Command, []string) error { return c.idOffline(c.stdout, asJSON) })(cmd, args)
		}
		return err
	}
	return cmd
}

func (c *cli) peersCmd() *cobra.Command {
	return apiCmd(c, "peers", "List the peers the running daemon is connected to", "/api/v0/peers",
		func(info *node.PeersInfo) {
			if info.Peers == nil {
				info.Peers = []node.PeerInfo{}
			}
		},
		func(w io.Writer, info *node.PeersInfo) {
			if len(info.Peers) == 0 {
				fmt.Fprintln(w, "no peers")
			}
			for _, p := range info.Peers {
				fmt.Fprintf(w, "%s %s\n", p.ID, strings.Join(p.Addrs, " "))
			}
		})
}
