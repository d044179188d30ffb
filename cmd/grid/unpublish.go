package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) unpublishCmd() *cobra.Command {
	var (
		flags  clientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "unpublish NAME",
		Short: "Withdraw a model you published (owner only)",
		Long: `Withdraw a model: announce a signed tombstone (a newer manifest version
marked deleted). Only the model's owner, the repo's identity that published
it, can do this; holders drop their shares when they see the tombstone.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id := args[0]
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := cl.Unpublish(cl.ctx, id); err != nil {
				return nodeError(c.explain(cl.ctx, err, flags.timeout)) // node names the model
			}
			if asJSON {
				return writeJSON(c.stdout, map[string]any{"id": id, "unpublished": true})
			}
			fmt.Fprintf(c.stdout, "unpublished %q\n", id)
			return nil
		}),
	}
	flags.register(cmd.Flags())
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
