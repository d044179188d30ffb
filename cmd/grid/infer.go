package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node"
)

// inferView is the --json answer of grid infer.
type inferView struct {
	Model     string    `json:"model"`
	Shape     []int     `json:"shape"`
	Output    []float64 `json:"output"`
	Mode      string    `json:"mode"`
	Holders   []string  `json:"holders"`
	Dealer    string    `json:"dealer,omitempty"`
	Rounds    int       `json:"rounds"`
	BytesSent int64     `json:"bytes_sent"`
	BytesRecv int64     `json:"bytes_recv"`
	OnlineMS  float64   `json:"online_ms"`
	TotalMS   float64   `json:"total_ms"`
}

func viewResult(r *node.Result, plain bool) inferView {
	v := inferView{
		Model: r.Model, Shape: r.Shape, Output: r.Output, Mode: discovery.ModeMPC, Holders: []string{},
		Dealer: r.Dealer, Rounds: r.Rounds, BytesSent: r.BytesSent, BytesRecv: r.BytesRecv,
		OnlineMS: millis(r.Online), TotalMS: millis(r.Total),
	}
	if plain {
		v.Mode = discovery.ModePlain
	}
	for _, h := range r.Holders {
		v.Holders = append(v.Holders, h.String())
	}
	if v.Shape == nil {
		v.Shape = []int{}
	}
	if v.Output == nil {
		v.Output = []float64{}
	}
	return v
}

// inferFlags are grid infer's flags.
type inferFlags struct {
	client        clientFlags
	values, input string
	dealer        string
	plain, asJSON bool
}

func (c *cli) inferCmd() *cobra.Command {
	var f inferFlags
	cmd := &cobra.Command{
		Use:   "infer NAME (--values 5,3 | --input FILE.json|.npy)",
		Short: "Run private inference: only this client sees the answer",
		Long: `Query a model with a private input. In MPC mode the input is secret-shared
to the model's holders, which evaluate the network together with correlated
randomness from a dealer; only this client reconstructs the answer.

The input is --values (a flat list, shaped to the model's input shape; a
whole number of samples when the model has a batch dimension) or --input (a
JSON nested list, or a .npy float32/float64 array). The dealer is one the
model's owner trusts: by default a reachable dealer the signed manifest
names (see "grid dealers NAME"); --dealer picks one of them by peer ID, and
"--dealer self" makes this client deal, which only the model's owner may do
(holders refuse any other dealer). --plain is required to query a
model published with --plain (your input then reaches its host in the
clear) and refused for an MPC model. It prints the output tensor, or for a
classifier's batch (output [N, C]) one line per sample with its predicted
class ("sample 0: class 3  [...]"); --json prints {"model", "shape",
"output" (the flat list, row-major), "mode", "holders", "dealer", "rounds",
"bytes_sent", "bytes_recv", "online_ms", "total_ms"}. "rounds" are the
query's online rounds, exchanges among the holders while they evaluate the
plan (the busiest holder's count; set-up rounds such as the weight mask
agreement are not counted, as in "grid demo"); the bytes are all the
busiest holder exchanged with the others, set-up included.

Precision and range: values are fixed point with 16 fractional bits (a
resolution of 2^-16, about 1.5e-5, per value), and every product sum inside
the model, bias included, must stay within ±2^30 (about ±1.07e9). Inputs
beyond the range the model's owner declared (grid publish --input-range)
are refused, and a result that overflowed is reported as an error, never
printed.`,
		Example: `  grid infer convnet --values 5,3
  grid infer digits --input sample.npy --dealer self --json`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error { return c.runInfer(cmd, args[0], &f) }),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.values, "values", "", "input values, comma-separated (shaped to the model's input)")
	fs.StringVar(&f.input, "input", "", "input file: .json (nested lists) or .npy")
	fs.BoolVar(&f.plain, "plain", false, "query a model published with --plain (no MPC)")
	fs.StringVar(&f.dealer, "dealer", "", `a dealer the model's manifest names (peer ID), or "self" (the owner only; default: a reachable dealer the manifest names)`)
	f.client.register(fs)
	addJSONFlag(fs, &f.asJSON)
	return cmd
}

// runInfer is one inference, one way: the input is read before joining
// the network (bad input fails fast, exit code 2), the model looked up
// once (node.Model: manifest and verified plan), the input fitted once to
// the plan (tensorio.Fit), and node.Query checks the mode and the range
// and runs the session.
func (c *cli) runInfer(cmd *cobra.Command, name string, f *inferFlags) error {
	if (f.values == "") == (f.input == "") {
		return usageErrorf("give exactly one of --values and --input")
	}
	if f.dealer != "" && f.dealer != "self" {
		if err := checkPeerID("--dealer", f.dealer); err != nil {
			return err
		}
	}
	x, form, err := readInput(f.values, f.input)
	if err != nil {
		return badInput(err)
	}
	cl, err := c.openClient(cmd, &f.client)
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := c.lookupModel(cl, name)
	if err != nil {
		return c.explain(cl.ctx, err, f.client.timeout)
	}
	in, err := fitInput(name, x, form, m.Plan.Input.Shape)
	if err != nil {
		return badInput(err)
	}
	res, err := cl.Query(cl.ctx, m, in, node.InferOptions{Plain: f.plain, Dealer: f.dealer})
	if errors.Is(err, node.ErrModeMismatch) {
		return badInput(modeMismatch(name, m.Mode, f.plain))
	}
	if err != nil {
		return nodeError(c.explain(cl.ctx, err, f.client.timeout)) // node names the model
	}
	if f.asJSON {
		return writeJSON(c.stdout, viewResult(res, f.plain))
	}
	writeOutput(c.stdout, res.Shape, res.Output)
	return nil
}

// lookupModel finds the model (its manifest and verified plan) among those
// the client knows.
func (c *cli) lookupModel(cl *client, name string) (*node.Model, error) {
	m, err := cl.Model(cl.ctx, name)
	if errors.Is(err, discovery.ErrNotFound) || errors.Is(err, node.ErrUnknownModel) {
		if near := nearestModel(cl, name); near != "" {
			return nil, fmt.Errorf("%w %q: no such model on the network; did you mean %q? (see \"grid models\")", node.ErrUnknownModel, name, near)
		}
		return nil, fmt.Errorf("%w %q: no such model on the network (see \"grid models\")", node.ErrUnknownModel, name)
	}
	if err != nil {
		return nil, err // "look up model NAME: ..."
	}
	return m, nil
}

// modeMismatch says how to query a model published in the other mode.
func modeMismatch(name, mode string, plain bool) error {
	if plain {
		return fmt.Errorf("model %q is published in %s mode, not plain: drop --plain", name, mode)
	}
	return fmt.Errorf("model %q is published in plain mode: add --plain", name)
}

// nearestModel returns the id of a known model within a small edit
// distance of name (a typo: at most 1 edit for ids up to 4 characters,
// 2 beyond), or "".
func nearestModel(cl *client, name string) string {
	ms, err := cl.Models(cl.ctx)
	if err != nil {
		return ""
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return nearest(name, ids)
}

// nearest returns the candidate closest to name by edit distance, if
// close enough to be a typo (ties: the first in sorted order), or "".
func nearest(name string, candidates []string) string {
	limit := 2
	if len([]rune(name)) <= 4 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD && c != name {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (in runes).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
