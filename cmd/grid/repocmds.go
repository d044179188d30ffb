package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/node"
)

// rawConfig reads the repo's config file as JSON (after loadRepoConfig's
// checks: it exists, its modes, it parses).
func (c *cli) rawConfig() (path string, m map[string]any, err error) {
	cfg, err := c.loadRepoConfig()
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(cfg.RepoDir, node.ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", nil, fmt.Errorf("config %s: %w", path, err)
	}
	return path, m, nil
}

// writeRawConfig checks m as a config (node.CheckConfig) and replaces the
// file with it (mode 0600, through a rename). A bad edit is bad input.
func writeRawConfig(path string, m map[string]any) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := node.CheckConfig(b); err != nil {
		return badInput(fmt.Errorf("the edited config is not valid, left unchanged: %w", err))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// lookupKey walks a dotted KEY (Addresses.API) through the config.
func lookupKey(m map[string]any, key string) (any, bool) {
	var v any = m
	for _, k := range strings.Split(key, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// setKey sets an existing dotted KEY in the config.
func setKey(m map[string]any, key string, val any) bool {
	parts := strings.Split(key, ".")
	obj := m
	for _, k := range parts[:len(parts)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			return false
		}
		obj = next
	}
	if _, ok := obj[parts[len(parts)-1]]; !ok {
		return false
	}
	obj[parts[len(parts)-1]] = val
	return true
}

// redact hides the private key from a printed config.
func redact(m map[string]any) {
	if id, ok := m["Identity"].(map[string]any); ok {
		if _, ok := id["PrivKey"]; ok {
			id["PrivKey"] = "(hidden)"
		}
	}
}

func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config [KEY [VALUE]]",
		Short: "Show or edit the repo's config",
		Long: `Show the repo's config (the private key hidden), one KEY's value (a dotted
path: Addresses.API, Addresses.Listen, Swarm.NAT, Bootstrap, Roles,
Sessions.Timeout), or set KEY to VALUE: JSON when VALUE parses as JSON
(["a","b"], true, 64), else a string. An edit that would not load (a bad
address, an unknown role) is refused and the file left unchanged.
Identity.* cannot be set. A running daemon reads the config when it starts.`,
		Example: `  grid config
  grid config Addresses.API
  grid config Addresses.API 127.0.0.1:5302
  grid config Addresses.Listen '["/ip4/0.0.0.0/tcp/4301"]'
  grid config Swarm.NAT false`,
		Args: cobra.MaximumNArgs(2),
		RunE: runE(func(_ *cobra.Command, args []string) error {
			path, m, err := c.rawConfig()
			if err != nil {
				return err
			}
			switch len(args) {
			case 0:
				redact(m)
				return writeJSON(c.stdout, m)
			case 1:
				if strings.HasPrefix(args[0], "Identity.PrivKey") {
					return usageErrorf("config key %q is the private key: it is not printed", args[0])
				}
				v, ok := lookupKey(m, args[0])
				if !ok {
					return usageErrorf("config key %q does not exist (see \"grid config\")", args[0])
				}
				if s, ok := v.(string); ok {
					fmt.Fprintln(c.stdout, s)
					return nil
				}
				return writeJSON(c.stdout, v)
			}
			key, raw := args[0], args[1]
			if strings.HasPrefix(key, "Identity") {
				return usageErrorf("config key %q cannot be set: the identity is made by grid init", key)
			}
			var val any
			if err := json.Unmarshal([]byte(raw), &val); err != nil {
				val = raw
			}
			if !setKey(m, key, val) {
				return usageErrorf("config key %q does not exist (see \"grid config\")", key)
			}
			return writeRawConfig(path, m)
		}),
	}
	return cmd
}

// bootstrapCmd is "grid bootstrap": list, add or remove the repo's bootstrap
// peers.
func (c *cli) bootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap add|rm|list",
		Short: "List or edit the repo's bootstrap peers",
		Long: `List, add or remove the repo's bootstrap peers: the peers a daemon or a
client command connects to first (multiaddrs ending in /p2p/PEER). "rm
--all" removes every one. A running daemon reads them when it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var noAll, all bool
	addCmd := &cobra.Command{Use: "add MULTIADDR...", Short: "Add bootstrap peers", Args: cobra.MinimumNArgs(1), RunE: c.editBootstrap(true, &noAll)}
	rmCmd := &cobra.Command{Use: "rm (MULTIADDR... | --all)", Short: "Remove bootstrap peers", RunE: c.editBootstrap(false, &all)}
	rmCmd.Flags().BoolVar(&all, "all", false, "remove every bootstrap peer")
	cmd.AddCommand(c.bootstrapListCmd(), addCmd, rmCmd)
	return cmd
}

// bootstrapListCmd is "grid bootstrap list": it prints the repo's
// bootstrap peers, one a line.
func (c *cli) bootstrapListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the bootstrap peers",
		Args:  cobra.NoArgs,
		RunE: runE(func(*cobra.Command, []string) error {
			cfg, err := c.loadRepoConfig()
			if err != nil {
				return err
			}
			for _, a := range cfg.Bootstrap {
				fmt.Fprintln(c.stdout, a)
			}
			return nil
		}),
	}
}

// editBootstrap is the RunE of "grid bootstrap add" (add) or "grid
// bootstrap rm" (all: its --all flag): it edits the Bootstrap list of the
// repo's raw config, writes it back and prints every address it added or
// removed.
func (c *cli) editBootstrap(add bool, all *bool) func(*cobra.Command, []string) error {
	return runE(func(_ *cobra.Command, args []string) error {
		addrs := splitList(args)
		if err := checkPeerAddrs("bootstrap address", addrs); err != nil {
			return err
		}
		if !add && !*all && len(addrs) == 0 {
			return usageErrorf("give the addresses to remove, or --all")
		}
		path, m, err := c.rawConfig()
		if err != nil {
			return err
		}
		cur := rawBootstrap(m)
		var changed []string
		verb := "added"
		if add {
			cur, changed = addBootstrap(cur, addrs)
		} else {
			verb = "removed"
			if cur, changed, err = removeBootstrap(cur, addrs, *all); err != nil {
				return err
			}
		}
		if cur == nil {
			cur = []string{}
		}
		m["Bootstrap"] = cur
		if err := writeRawConfig(path, m); err != nil {
			return err
		}
		for _, a := range changed {
			fmt.Fprintf(c.stdout, "%s %s\n", verb, a)
		}
		return nil
	})
}

// rawBootstrap is the Bootstrap list of a raw config (its strings; nil
// when it has none).
func rawBootstrap(m map[string]any) []string {
	var cur []string
	if list, ok := m["Bootstrap"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				cur = append(cur, s)
			}
		}
	}
	return cur
}

// addBootstrap appends to cur the addresses it does not hold yet, and
// returns the new list and those it added.
func addBootstrap(cur, addrs []string) (next, added []string) {
	for _, a := range addrs {
		if !slices.Contains(cur, a) {
			cur = append(cur, a)
			added = append(added, a)
		}
	}
	return cur, added
}

// removeBootstrap removes addrs (every address with all) from cur, and
// returns the addresses kept and those removed; it fails, on the first
// address cur does not hold.
func removeBootstrap(cur, addrs []string, all bool) (kept, removed []string, err error) {
	for _, a := range cur {
		if all || slices.Contains(addrs, a) {
			removed = append(removed, a)
		} else {
			kept = append(kept, a)
		}
	}
	for _, a := range addrs {
		if !slices.Contains(removed, a) {
			return nil, nil, fmt.Errorf("%s is not a bootstrap peer of this repo (see \"grid bootstrap list\")", a)
		}
	}
	return kept, removed, nil
}

func (c *cli) shutdownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "shutdown",
		Short: "Stop the daemon running on the repo, through its HTTP API",
		Long: `Ask the daemon running on the repo to stop (POST /api/v0/shutdown on its
HTTP API, as SIGTERM would) and wait until it has (its api file is gone,
at most 20 s).`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			repo, err := c.repoDir()
			if err != nil {
				return err
			}
			var ans struct{ Status string }
			if err := c.daemonDo(cmd.Context(), http.MethodPost, "/api/v0/shutdown", &ans); err != nil {
				return err
			}
			apiFile := filepath.Join(repo, node.APIFile)
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, err := os.Stat(apiFile); errors.Is(err, fs.ErrNotExist) {
					fmt.Fprintf(c.stdout, "daemon of %s stopped\n", repo)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("daemon of %s is shutting down but has not stopped within 20s", repo)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		}),
	}
}

// idOffline is grid id without a daemon: the identity and the configured
// addresses, from the repo.
func (c *cli) idOffline(w io.Writer, asJSON bool) error {
	cfg, err := c.loadRepoConfig()
	if err != nil {
		return err
	}
	id, err := cfg.PeerID()
	if err != nil {
		return err
	}
	if asJSON {
		listen := cfg.Listen
		if listen == nil {
			listen = []string{}
		}
		return writeJSON(w, map[string]any{"id": id.String(), "addresses": []string{}, "listen": listen,
			"roles": cfg.Roles, "protocols": []string{}, "online": false})
	}
	fmt.Fprintf(w, "peer ID %s\nroles %s\n", id, strings.Join(cfg.Roles, ","))
	for _, a := range cfg.Listen {
		fmt.Fprintf(w, "listen %s\n", a)
	}
	fmt.Fprintln(w, "offline: no daemon runs on this repo (addresses as configured)")
	return nil
}
