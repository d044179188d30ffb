package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
)

// parseDealers parses --dealers: "" (nil: the default choice), "none" (an
// empty list) or comma-separated peer IDs.
func parseDealers(s string) ([]peer.ID, error) {
	switch strings.TrimSpace(s) {
	case "":
		return nil, nil
	case "none":
		return []peer.ID{}, nil
	}
	var out []peer.ID
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		id, err := peer.Decode(f)
		if err != nil {
			return nil, usageErrorf("--dealers: %q is not a peer ID (like 12D3KooW...): %v", f, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// writeDealers prints the dealers a manifest names.
func writeDealers(w io.Writer, dealers []string) {
	if len(dealers) == 0 {
		fmt.Fprintln(w, "dealers: none named (only the owner can query this model)")
		return
	}
	fmt.Fprintf(w, "dealers the owner trusts (%d):\n", len(dealers))
	for _, d := range dealers {
		fmt.Fprintf(w, "  %s\n", d)
	}
}

func (c *cli) dealersCmd() *cobra.Command {
	var (
		flags  clientFlags
		set    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "dealers NAME [--set PEER,PEER... | --set none]",
		Short: "Show or change the dealers a model's owner trusts",
		Long: `Show the dealers a model's signed manifest names: the only peers, besides
the owner, that its holders accept as the dealer of a session. A dealer
supplies the session's correlated randomness: one that colludes with a
holder learns the weights and the input, and one that colludes with a client
can steer the computation, so only the owner chooses them.

--set replaces the list (comma-separated peer IDs, or "none") with a new
manifest version signed by the owner; the holders keep their shares.`,
		Example: `  grid dealers convnet
  grid dealers convnet --set 12D3KooWA...,12D3KooWB...`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var ds []peer.ID
			if cmd.Flags().Changed("set") {
				var err error
				if ds, err = parseDealers(set); err != nil {
					return err
				}
				if ds == nil {
					return usageErrorf(`--set needs peer IDs or "none"`)
				}
			}
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			m, err := c.lookupModel(cl, name)
			if err != nil {
				return c.explain(cl.ctx, err, flags.timeout)
			}
			if ds != nil {
				if m.Manifest, err = cl.SetDealers(cl.ctx, name, ds); err != nil {
					return nodeError(c.explain(cl.ctx, err, flags.timeout))
				}
			}
			v := viewModel(m.Manifest)
			if asJSON {
				return writeJSON(c.stdout, map[string]any{"id": v.ID, "owner": v.Owner, "dealers": v.Dealers, "version": v.Version})
			}
			fmt.Fprintf(c.stdout, "model %q, owner %s\n", v.ID, v.Owner)
			writeDealers(c.stdout, v.Dealers)
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&set, "set", "", `replace the dealers: comma-separated peer IDs, or "none" (owner only)`)
	flags.register(fs)
	addJSONFlag(fs, &asJSON)
	return cmd
}
