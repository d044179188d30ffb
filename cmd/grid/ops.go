package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/mpcproto/onnx"
)

// opsHint is what an "unsupported op" error points to.
const opsHint = `see "grid ops" for the supported ONNX ops`

func (c *cli) opsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "List the ONNX ops grid publish takes, their limits and which are approximated",
		Long: `List the ONNX ops (domain ai.onnx) the importer of "grid publish" takes.
"secure" ops run on secret shares; "folded" ops are evaluated at import
when all their inputs are constants (shape arithmetic, constant weights)
and cost nothing online. "approx" marks ops whose secure result
approximates the function beyond fixed-point rounding (2^-16). A model
with any other op is refused at publish ("unsupported op X").

--json prints [{"op", "secure", "folded", "approximated", "limits"}].`,
		Args: cobra.NoArgs,
		RunE: runE(func(*cobra.Command, []string) error {
			ops := onnx.SupportedOps()
			if asJSON {
				return writeJSON(c.stdout, ops)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "OP\tEVALUATED\tAPPROX\tLIMITS")
			for _, o := range ops {
				ev := "secure"
				switch {
				case o.Secure && o.Folded:
					ev = "secure, folded"
				case o.Folded:
					ev = "folded"
				}
				approx := "no"
				if o.Approximated {
					approx = "yes"
				}
				limits := o.Limits
				if limits == "" {
					limits = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Op, ev, approx, limits)
			}
			return tw.Flush()
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
