package main

import (
	"github.com/spf13/cobra"
)

// repairCmd is "grid repair NAME": the owner asks a live holder to replace
// the model's unreachable holders now (node.AskRepair).
func (c *cli) repairCmd() *cobra.Command {
	var (
		flags  clientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "repair NAME",
		Short: "Replace a model's unreachable holders now (owner only)",
		Long: `Ask a live holder of a model you own to repair it now: the holders that are
unreachable (up to the model's --tolerate) are replaced by new peers (the
policy's candidates, else peers advertising the holder role), which receive
the lost shares from live replicas; then every holder re-randomises its
shares with a sharing of zero, so shares taken from a lost disk no longer
combine with the new ones. The model needs a repair policy (grid publish
--repair-grace); without the owner, the holders repair on their own once a
holder has been unreachable for the grace.

Prints the replaced and new holders and the time the repair took. Exit 1
with the reason when every holder is reachable or too few are.`,
		Example: `  grid repair convnet`,
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.AskRepair(cl.ctx, args[0])
			if err != nil {
				return nodeError(c.explain(cl.ctx, err, flags.timeout))
			}
			if asJSON {
				return writeJSON(c.stdout, res)
			}
			writeRepair(c, "repaired", res)
			return nil
		}),
	}
	flags.register(cmd.Flags())
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
