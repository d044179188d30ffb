package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/node"
)

// reshareCmd is "grid reshare NAME --holders P1,...": the owner moves a
// model to a new holder list and re-randomises its shares (node.Reshare).
func (c *cli) reshareCmd() *cobra.Command {
	var (
		flags   clientFlags
		holders string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "reshare NAME --holders PEER,PEER,...",
		Short: "Move a model to new holders and re-randomise its shares (owner only)",
		Long: `Re-share a model you own (published with --tolerate F >= 1) onto a new
holder list: the same number of holders in the same party order, where any
places may change as long as every share keeps one of its holders. The
holders that stay send the moving shares to the new ones, then every
holder of the new list re-randomises its shares with a sharing of zero
(old shares no longer combine with the new ones), and you sign a new
manifest version naming the new holders. Every holder of the new list
must be reachable. Prints the replaced and new holders and the time taken.`,
		Example: `  grid reshare convnet --holders 12D3KooWA...,12D3KooWB...,12D3KooWC...,12D3KooWD...`,
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			hs, err := parsePeerList("--holders", holders)
			if err != nil {
				return err
			}
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.Reshare(cl.ctx, args[0], hs)
			if err != nil {
				return nodeError(c.explain(cl.ctx, err, flags.timeout))
			}
			if asJSON {
				return writeJSON(c.stdout, res)
			}
			writeRepair(c, "re-shared", res)
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&holders, "holders", "", "the new holder list: comma-separated peer IDs, in party order (grid status NAME shows the current one)")
	flags.register(fs)
	addJSONFlag(fs, &asJSON)
	return cmd
}

// parsePeerList parses a flag's comma-separated peer IDs (at least one).
func parsePeerList(flag, s string) ([]peer.ID, error) {
	var out []peer.ID
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := peer.Decode(f)
		if err != nil {
			return nil, usageErrorf("%s: %q is not a peer ID (like 12D3KooW...): %v", flag, f, err)
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, usageErrorf("%s needs comma-separated peer IDs", flag)
	}
	return out, nil
}

// writeRepair prints a repair's or re-sharing's outcome.
func writeRepair(c *cli, what string, res *node.RepairResult) {
	fmt.Fprintf(c.stdout, "%s %s in %v (shares version %d, %d bytes moved between holders)\n",
		what, res.Model, res.Duration.Round(time.Millisecond), res.SharesVersion, res.BytesMoved)
	for i := range res.Replaced {
		fmt.Fprintf(c.stdout, "  replaced %s by %s\n", res.Replaced[i], res.Newcomers[i])
	}
	fmt.Fprintf(c.stdout, "holders now (%d):\n", len(res.Holders))
	for _, h := range res.Holders {
		fmt.Fprintf(c.stdout, "  %s\n", h)
	}
}
