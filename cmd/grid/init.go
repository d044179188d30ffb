package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/node"
)

func (c *cli) initCmd() *cobra.Command {
	var (
		bootstrap []string
		asJSON    bool
		prof      string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the repo dir: an ed25519 identity and a config",
		Long: `Create the repo dir (--repo, else $GRID_PATH, else ~/.grid): a fresh ed25519
identity and a JSON config (file mode 0600, it holds the private key), with
every role and the given bootstrap peers. Every other command needs a repo:
client commands use its identity, so "grid init" comes first. It fails if
the repo already exists.

Profiles (--profile):
  default  a node others can reach: TCP and QUIC on all interfaces at grid's
           port 4301 (WebSockets at 4302), the HTTP API at 127.0.0.1:5301,
           and go-libp2p's NAT tools (AutoNAT v2, circuit relay v2 client,
           hole punching, port mapping); "--roles ...,relay" on the daemon
           also serves as a relay for peers behind NATs.
  test     this machine's loopback only, free ports, no NAT tools: for
           tests, local swarms and several nodes on one machine.
Edit the config later with "grid config" and "grid bootstrap".`,
		Example: `  grid init
  grid init --profile test --repo /tmp/n1
  grid init --repo /tmp/owner --bootstrap /ip4/127.0.0.1/tcp/4301/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			repo, err := c.repoDir()
			if err != nil {
				return err
			}
			if !slices.Contains(node.Profiles, prof) {
				return usageErrorf("--profile %q is not one of %s", prof, strings.Join(node.Profiles, ", "))
			}
			bs := c.bootstrapFrom(bootstrap)
			if err := checkPeerAddrs("--bootstrap", bs); err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(repo, node.ConfigFile)); err == nil {
				return fmt.Errorf("a repo already exists at %s", repo)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("check repo %s: %w", repo, err)
			}
			id, err := node.InitProfile(repo, bs, prof)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, map[string]string{"id": id.String(), "repo": repo})
			}
			fmt.Fprintf(c.stdout, "initialised grid repo at %s\npeer ID %s\n", repo, id)
			return nil
		}),
	}
	cmd.Flags().StringSliceVar(&bootstrap, "bootstrap", nil, "bootstrap peer multiaddr with /p2p/ (repeatable; default $GRID_BOOTSTRAP)")
	cmd.Flags().StringVar(&prof, "profile", node.ProfileDefault, "config profile: default (reachable, port 4301, NAT tools) or test (loopback, free ports)")
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}

// checkPeerAddrs checks that every address is a multiaddr ending in
// /p2p/PEER; a bad one is a usage error naming the flag and the address.
func checkPeerAddrs(flag string, addrs []string) error {
	for _, a := range addrs {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return usageErrorf("%s %q is not a peer multiaddr like /ip4/127.0.0.1/tcp/4301/p2p/12D3KooW...: %v", flag, a, err)
		}
	}
	return nil
}

// loadRepoConfig loads the repo's config, with a clear message when the
// repo does not exist yet.
func (c *cli) loadRepoConfig() (node.Config, error) {
	repo, err := c.repoDir()
	if err != nil {
		return node.Config{}, err
	}
	if _, err := os.Stat(filepath.Join(repo, node.ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		return node.Config{}, fmt.Errorf("no grid repo at %s: run \"grid init\" first (or pass --repo, or set $%s)", repo, envPath)
	}
	cfg, err := node.LoadConfig(repo)
	if err != nil {
		return node.Config{}, err
	}
	return cfg, nil
}

// checkPeerID checks that s is a peer ID; a bad one is a usage error.
func checkPeerID(flag, s string) error {
	if _, err := peer.Decode(s); err != nil {
		return usageErrorf("%s %q is not a peer ID (like 12D3KooW...) or \"self\": %v", flag, s, err)
	}
	return nil
}
