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

// daemonGet fetches path from the HTTP API of the daemon running on the
// repo (its address is in the repo's api file) and decodes the JSON answer.
func (c *cli) daemonGet(ctx context.Context, path string, v any) error {
	repo, err := c.repoDir()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(repo, node.APIFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no daemon running on repo %s (no api file): start one with \"grid daemon\"", repo)
	}
	if err != nil {
		return fmt.Errorf("read api file: %w", err)
	}
	addr := strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
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

func (c *cli) idCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show the running daemon's peer ID, addresses and roles",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var info node.IDInfo
			if err := c.daemonGet(cmd.Context(), "/api/v0/id", &info); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, info)
			}
			fmt.Fprintf(c.stdout, "peer ID %s\nroles %s\n", info.ID, strings.Join(info.Roles, ","))
			for _, a := range info.Addresses {
				fmt.Fprintf(c.stdout, "address %s\n", a)
			}
			return nil
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

func (c *cli) peersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peers the running daemon is connected to",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var info node.PeersInfo
			if err := c.daemonGet(cmd.Context(), "/api/v0/peers", &info); err != nil {
				return err
			}
			if info.Peers == nil {
				info.Peers = []node.PeerInfo{}
			}
			if asJSON {
				return writeJSON(c.stdout, info)
			}
			for _, p := range info.Peers {
				fmt.Fprintf(c.stdout, "%s %s\n", p.ID, strings.Join(p.Addrs, " "))
			}
			return nil
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
