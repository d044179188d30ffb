package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// statusCmd is "grid status NAME": each share's holders and whether each
// is reachable now (node.Status probes them, 2 s at most each, all at once).
func (c *cli) statusCmd() *cobra.Command {
	var (
		flags  clientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a model's holders, the shares each holds and which are live",
		Long: `Probe every holder of a model (a connection attempt of at most 2 s, all at
once) and show which shares each holds and whether it is reachable, then
each share and how many of its holders are live. A model published with
--tolerate F answers while every share has a live holder ("answers: yes");
exit code 0 either way.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := cl.Status(cl.ctx, args[0])
			if err != nil {
				return nodeError(c.explain(cl.ctx, err, flags.timeout))
			}
			if asJSON {
				return writeJSON(c.stdout, st)
			}
			answers := "yes"
			if !st.Answers {
				answers = "no: some share has no live holder"
			}
			fmt.Fprintf(c.stdout, "%s version %d: tolerates %d holder(s) down, any %d colluding learn nothing; answers: %s\n",
				st.Model, st.Version, st.Tolerate, st.Private, answers)
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOLDER\tSHARES\tLIVE")
			for _, h := range st.Holders {
				live := "yes"
				if !h.Live {
					live = "no"
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\n", h.Peer, h.Shares, live)
			}
			fmt.Fprintln(tw, "SHARE\tHOLDERS\tLIVE")
			for _, s := range st.Shares {
				hs := make([]string, len(s.Holders))
				for i, h := range s.Holders {
					hs[i] = shortID(h.String())
				}
				fmt.Fprintf(tw, "%d\t%v\t%d of %d\n", s.Share, hs, s.Live, len(s.Holders))
			}
			return tw.Flush()
		}),
	}
	flags.register(cmd.Flags())
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
