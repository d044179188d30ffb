package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/onnx"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node"
)

// progressThreshold is the upload size from which publish shows a progress
// bar on stderr.
const progressThreshold = 1 << 20

// publishFlags are grid publish's flags.
type publishFlags struct {
	client                  clientFlags
	id                      string
	holders, tolerate       int
	plain, noRemote, asJSON bool
	quiet, update           bool
	dealers                 string
	inputRange              float64
	repairGrace             time.Duration
	repairCandidates        string
}

func (c *cli) publishCmd() *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish FILE.onnx --id NAME",
		Short: "Publish an ONNX model, its weights secret-shared across holders",
		Long: `Import an ONNX model (what torch.onnx.export writes), split its weights into
additive secret shares, upload one share set to each of --holders holder
peers, and announce the signed manifest (id, owner, holders, public op graph
and shapes). In --plain mode the weights go in plaintext to one host peer
instead. --no-remote-inference makes every holder refuse queries.

--tolerate F (0 to N-2) keeps the model answering while any F of its N
holders are down or lost: the weights are split into more additive shares
and each is stored on F+1 holders (replicated sharing); a query uses one
live holder per share. The price: each holder stores (and you upload) more
shares, and fewer holders need collude to learn the weights: publish and
"grid models" print that number ("grid status NAME" shows which holders
are live).

Whoever deals a session's correlated randomness can steer it, so the owner,
not the client, chooses the dealers: --dealers names the peers you trust
(comma-separated peer IDs, or "none": then only you can query the model),
and by default up to 3 peers advertising the dealer role that are not
holders are named. Holders refuse any other dealer; you (the owner) may
always deal. Change them later with "grid dealers NAME --set ...".
--repair-grace D (with --tolerate) lets the holders replace a holder that
has been unreachable for D by a new peer, without you: they copy its shares
from live replicas, re-randomise every share and sign a repair record that
every node checks against this policy ("grid repair NAME" asks for one
now); --repair-candidates limits the peers they may bring in.
--input-range R declares the largest |input value| the model is meant for:
clients refuse larger values, and publish warns when a worst-case estimate
of the model's intermediate values for inputs up to R leaves the safe range
of the fixed-point arithmetic. The repo's
identity owns the model: only it can publish a new version or unpublish it.
Publishing an id you have published already fails (exit 2) naming the live
version; --update replaces it, says what changed (shapes, plan hash,
holders, tolerate, dealers) and keeps the old version answering until every
holder has the new one: holders keep both until the new manifest is out.
Uploads over 1 MiB show a progress bar on stderr when it is a terminal
(--quiet hides it).`,
		Example: `  grid publish testdata/seed.onnx --id convnet --holders 4
  grid publish testdata/seed.onnx --id convnet --holders 4 --tolerate 1
  grid publish model.onnx --id digits --plain
  grid publish retrained.onnx --id convnet --holders 4 --update`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error { return c.runPublish(cmd, args[0], &f) }),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.id, "id", "", "model name (letters, digits, '.', '_', '-')")
	fs.IntVar(&f.holders, "holders", 2, "number of share-holders (MPC mode)")
	fs.IntVar(&f.tolerate, "tolerate", 0, "holders that may be down while the model still answers (0 to holders-2; each share is stored on tolerate+1 holders)")
	fs.BoolVar(&f.plain, "plain", false, "host the model in plaintext on one peer (no MPC)")
	fs.BoolVar(&f.noRemote, "no-remote-inference", false, "publish, but have holders refuse queries")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	fs.BoolVar(&f.update, "update", false, "replace the model if you published it already (the old version answers until the new one is uploaded)")
	fs.StringVar(&f.dealers, "dealers", "", `dealers you trust, comma-separated peer IDs, or "none" (default: up to 3 advertised dealers that are not holders)`)
	fs.Float64Var(&f.inputRange, "input-range", 0, "largest |input value| the model is meant for (clients refuse larger; 0: not declared)")
	fs.DurationVar(&f.repairGrace, "repair-grace", 0, "with --tolerate: let the other holders replace a holder unreachable this long, without you (e.g. 24h; 0: no repair)")
	fs.StringVar(&f.repairCandidates, "repair-candidates", "", "with --repair-grace: the only peers a repair may bring in, comma-separated peer IDs (default: any holder-role peer that is not the owner, a dealer or a holder)")
	_ = cmd.MarkFlagRequired("id")
	f.client.register(fs)
	addJSONFlag(fs, &f.asJSON)
	return cmd
}

// runPublish checks the flags and imports the model before it joins the
// network (bad usage and bad input fail fast, exit code 2), then
// publishes it and prints the manifest.
func (c *cli) runPublish(cmd *cobra.Command, file string, f *publishFlags) error {
	if err := discovery.ValidID(f.id); err != nil {
		return usageErrorf("--id %q: %v", f.id, err)
	}
	if f.plain && cmd.Flags().Changed("holders") {
		return usageErrorf("--plain hosts the model on one peer: drop --holders")
	}
	if !f.plain && f.holders < 2 {
		return usageErrorf("--holders %d: MPC needs at least 2 holders (or use --plain)", f.holders)
	}
	if f.plain && f.tolerate != 0 {
		return usageErrorf("--plain hosts the model on one peer: drop --tolerate")
	}
	if f.tolerate < 0 || f.tolerate > 0 && f.tolerate > f.holders-2 {
		return usageErrorf("--tolerate %d with --holders %d: want 0 to %d (at --tolerate %d one holder would hold every share)", f.tolerate, f.holders, max(f.holders-2, 0), f.holders-1)
	}
	data, err := readModelFile(file)
	if err != nil {
		return badInput(err)
	}
	p, w, err := onnx.ImportBytes(data)
	if err != nil {
		return badInput(fmt.Errorf("import %s: %w", file, err))
	}
	ds, err := parseDealers(f.dealers)
	if err != nil {
		return err
	}
	rp, err := parseRepairPolicy(f)
	if err != nil {
		return err
	}
	if f.inputRange < 0 || math.IsNaN(f.inputRange) || math.IsInf(f.inputRange, 0) {
		return usageErrorf("--input-range %v: want a finite number >= 0", f.inputRange)
	}
	safe := c.checkRange(p, w, f.inputRange, f.plain)
	cl, err := c.openClient(cmd, &f.client)
	if err != nil {
		return err
	}
	defer cl.Close()
	var old replacedManifest
	opts := node.PublishOptions{Holders: f.holders, Tolerate: f.tolerate, Plain: f.plain, NoRemoteInference: f.noRemote,
		Dealers: ds, InputRange: f.inputRange, Update: f.update, Replaces: old.set, Repair: rp}
	var bar *uploadBar
	if !f.quiet && isTerminal(c.stderr) {
		bar = newUploadBar(c.stderr)
		opts.Progress = bar.update
	}
	m, err := cl.Publish(cl.ctx, f.id, p, w, opts)
	bar.finish(err == nil)
	if err != nil {
		return nodeError(modelExists(f.id, c.explain(cl.ctx, err, f.client.timeout))) // node names the model
	}
	v := viewModel(m)
	v.SafeInput = safe
	if f.asJSON {
		if old.m != nil {
			fmt.Fprintln(c.stderr, describeUpdate(viewModel(old.m), v))
		}
		return writeJSON(c.stdout, v)
	}
	if old.m != nil {
		fmt.Fprintln(c.stdout, describeUpdate(viewModel(old.m), v))
	}
	writePublished(c.stdout, v, f.inputRange)
	return nil
}

// writePublished prints a published model: its holders, shapes, dealers
// and the input range it is safe for.
func writePublished(w io.Writer, v modelView, inputRange float64) {
	what := fmt.Sprintf("over %d holders", len(v.Holders))
	if v.Mode == discovery.ModePlain {
		what = "in plain mode on host"
	}
	fmt.Fprintf(w, "published %q (%s) %s:\n", v.ID, v.Mode, what)
	for _, h := range v.Holders {
		fmt.Fprintf(w, "  %s\n", h)
	}
	if v.Mode == discovery.ModeMPC {
		fmt.Fprintf(w, "answers with up to %d holder(s) down (%d shares, each on %d holders); any %d holder(s) colluding learn nothing of the weights\n",
			v.Tolerate, max(len(v.Shares), len(v.Holders)), v.Tolerate+1, v.Collusion)
	}
	fmt.Fprintf(w, "input shape %s, output shape %s\n", shapeString(v.InputShape), shapeString(batchOutput(v.InputShape, v.OutputShape)))
	if !v.AllowRemote {
		fmt.Fprintln(w, "remote inference is disabled: holders refuse queries")
	}
	if v.Mode == discovery.ModeMPC {
		writeDealers(w, v.Dealers)
		writeRange(w, v.SafeInput, inputRange)
	}
}

// checkRange estimates, from the plaintext weights, the largest input
// magnitude for which no intermediate value can leave the fixed-point
// range (plan.EstimateRange, a worst-case bound) and warns on stderr when
// the declared --input-range exceeds it. It returns the safe input bound
// (0 when it cannot be estimated or in plain mode, which computes in
// float64).
func (c *cli) checkRange(p *plan.Plan, w plan.Weights, declared float64, plain bool) float64 {
	if plain {
		return 0
	}
	est, err := plan.EstimateRange(p, w, fixed.Default(), max(declared, 1))
	if err != nil {
		fmt.Fprintf(c.stderr, "grid: warning: no range estimate: %v\n", err)
		return 0
	}
	if declared > 0 && declared > est.SafeInput {
		fmt.Fprintf(c.stderr, "grid: warning: --input-range %g may overflow: %v\n", declared, est.Err())
	}
	return est.SafeInput
}

// writeRange prints the input range a published model is safe for.
func writeRange(w io.Writer, safe, declared float64) {
	if safe > 0 {
		fmt.Fprintf(w, "inputs with |x| <= %.6g cannot overflow (worst-case estimate from the weights)\n", safe)
	}
	if declared > 0 {
		fmt.Fprintf(w, "declared input range ±%g: clients refuse larger values\n", declared)
	}
}

// maxModelFile caps the ONNX file publish reads.
const maxModelFile = 1 << 30

// readModelFile reads an ONNX file with a clear error when it is missing.
func readModelFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open model file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat model file: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("model file %s is a directory", path)
	}
	if st.Size() > maxModelFile {
		return nil, fmt.Errorf("model file %s is %s, over the %s limit", path, formatBytes(st.Size()), formatBytes(maxModelFile))
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read model file: %w", err)
	}
	return b, nil
}

// uploadBar shows share-upload progress on stderr once the upload is large
// enough to be worth it. Progress callbacks may come from several
// goroutines (one upload per holder).
type uploadBar struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newUploadBar(w io.Writer) *uploadBar { return &uploadBar{w: w} }

func (u *uploadBar) update(done, total int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if total < progressThreshold {
		return
	}
	if u.bar == nil {
		u.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(u.w),
			progressbar.OptionSetDescription("uploading shares"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100_000_000), // 100 ms
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(u.w) }),
		)
	}
	_ = u.bar.Set64(done)
}

func (u *uploadBar) finish(ok bool) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar == nil {
		return
	}
	if ok {
		_ = u.bar.Finish()
	} else {
		// Clear the bar's line: the error that follows is the one line a
		// failed command prints.
		_ = u.bar.Clear()
	}
}

// isTerminal reports whether w is a terminal: the progress bar redraws its
// line with carriage returns, which only makes sense there (in a pipe or a
// log file it would leave a line per redraw).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
