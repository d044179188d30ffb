package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// modelView is a manifest as the CLI prints it (--json).
type modelView struct {
	ID      string   `json:"id"`
	Owner   string   `json:"owner"`
	Mode    string   `json:"mode"`
	Holders []string `json:"holders"`
	// Tolerate is how many holders may be down while the model answers;
	// Shares, with Tolerate > 0, each share's holders (indices into
	// Holders); Collusion how many holders may pool their shares and
	// still learn nothing of the weights (mpc mode).
	Tolerate    int       `json:"tolerate"`
	Shares      [][]int   `json:"shares,omitempty"`
	Collusion   int       `json:"collusion_threshold,omitempty"`
	InputShape  []int     `json:"input_shape"`
	OutputShape []int     `json:"output_shape"`
	AllowRemote bool      `json:"allow_remote_inference"`
	Dealers     []string  `json:"dealers"`
	InputRange  float64   `json:"input_range,omitempty"`
	SafeInput   float64   `json:"safe_input,omitempty"` // publish only: the worst-case safe |input|
	PlanHash    string    `json:"plan_hash"`
	Version     uint64    `json:"version"`
	Time        time.Time `json:"time"`
	// RepairSeq is how many repair records (signed by the holders) amend
	// the owner's manifest; RepairGrace (a Go duration, e.g. "24h0m0s")
	// and RepairCandidates are the owner's repair policy, absent without
	// one.
	RepairSeq        uint64   `json:"repair_seq"`
	RepairGrace      string   `json:"repair_grace,omitempty"`
	RepairCandidates []string `json:"repair_candidates,omitempty"`
	// Ops is the plan's op count (its nodes and a client-side final op);
	// Approximated the ops not computed exactly by the holders: "Sigmoid≈"
	// (a documented approximation) or "Softmax (client)" (applied by the
	// client after reconstruction); empty in plain mode (the host
	// computes the plan exactly).
	Ops          int      `json:"ops"`
	Approximated []string `json:"approximated"`
}

func viewModel(m *discovery.Manifest) modelView {
	v := modelView{
		ID: m.ID, Owner: m.Owner.String(), Mode: m.Mode, Holders: []string{},
		InputShape: m.InputShape, OutputShape: m.OutputShape, AllowRemote: m.AllowRemote,
		PlanHash: m.PlanHash, Version: m.Version, Time: m.Time.UTC(),
	}
	for _, h := range m.Holders {
		v.Holders = append(v.Holders, h.String())
	}
	v.Tolerate, v.Shares = m.Tolerate, m.Replicas
	v.RepairSeq = m.RepairSeq
	if m.Repair.Enabled() {
		v.RepairGrace = m.Repair.Grace.String()
	}
	for _, c := range m.Repair.Candidates {
		v.RepairCandidates = append(v.RepairCandidates, c.String())
	}
	if m.Mode == discovery.ModeMPC {
		v.Collusion = m.CollusionThreshold()
	}
	v.Dealers, v.InputRange = []string{}, m.InputRange
	for _, d := range m.Dealers {
		v.Dealers = append(v.Dealers, d.String())
	}
	if v.InputShape == nil {
		v.InputShape = []int{}
	}
	if v.OutputShape == nil {
		v.OutputShape = []int{}
	}
	v.Approximated = []string{}
	if p, err := plan.Unmarshal(m.Plan); err == nil {
		var approx []string
		v.Ops, approx = p.Summary()
		if m.Mode == discovery.ModeMPC && approx != nil {
			v.Approximated = approx
		}
	}
	return v
}

// shapeString prints a shape with the free batch dim as "N": [N, 64].
func shapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			parts[i] = "N"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// batchOutput writes the output shape (given for batch 1) with a free batch
// dimension when the input has one: [1, 10] becomes [N, 10].
func batchOutput(in, out []int) []int {
	if len(in) > 0 && in[0] == -1 && len(out) > 0 && out[0] == 1 {
		return append([]int{-1}, out[1:]...)
	}
	return out
}

// writeModelsTable prints models as a table with shortened peer IDs.
func writeModelsTable(w io.Writer, ms []modelView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tMODE\tHOLDERS\tINPUT\tOUTPUT\tOPS\tAPPROXIMATED\tREMOTE")
	for _, m := range ms {
		hs := make([]string, len(m.Holders))
		for i, h := range m.Holders {
			hs[i] = shortID(h)
		}
		remote := "yes"
		if !m.AllowRemote {
			remote = "no"
		}
		approx := strings.Join(m.Approximated, ", ")
		if approx == "" {
			approx = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d: %s\t%s\t%s\t%d\t%s\t%s\n", m.ID, shortID(m.Owner), m.Mode, len(hs),
			strings.Join(hs, ","), shapeString(m.InputShape), shapeString(batchOutput(m.InputShape, m.OutputShape)),
			m.Ops, approx, remote)
	}
	return tw.Flush()
}

func (c *cli) modelsCmd() *cobra.Command {
	var (
		flags  clientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List the models the network knows: id, owner, mode, holders, input shape, ops",
		Long: `List the models announced on the network (signed manifests, verified):
id, owner, mode (mpc or plain), holders (peer IDs), input and output shapes
(N is the free batch dimension), the plan's op count, the ops not computed
exactly (Sigmoid≈ and SiLU≈: documented approximations, see
docs/ARCHITECTURE.md; Softmax (client): a last Softmax the client applies
after adding up the output) and whether remote inference is allowed.
Peer IDs are shortened in the table; --json prints them whole.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cl, err := c.openClient(cmd, &flags)
			if err != nil {
				return err
			}
			defer cl.Close()
			ms, err := cl.Models(cl.ctx)
			if err != nil {
				return fmt.Errorf("list models: %w", c.explain(cl.ctx, err, flags.timeout))
			}
			views := make([]modelView, 0, len(ms))
			for _, m := range ms {
				views = append(views, viewModel(m))
			}
			sort.Slice(views, func(i, j int) bool { return views[i].ID < views[j].ID })
			if asJSON {
				return writeJSON(c.stdout, views)
			}
			if len(views) == 0 {
				fmt.Fprintln(c.stdout, "no models")
				return nil
			}
			return writeModelsTable(c.stdout, views)
		}),
	}
	flags.register(cmd.Flags())
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
