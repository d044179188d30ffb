package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// Demo parameters: the seed acceptance example.
const (
	demoModel   = "convnet"
	demoHolders = 4
)

var demoInput = []float64{5, 3}

// demoView is the --json report of grid demo.
type demoView struct {
	Nodes     int       `json:"nodes"`
	Model     string    `json:"model"`
	Input     []float64 `json:"input"`
	Shape     []int     `json:"shape"`
	Output    []float64 `json:"output"`
	Plaintext []float64 `json:"plaintext"`
	Holders   []string  `json:"holders"`
	Dealer    string    `json:"dealer"`
	Rounds    int       `json:"rounds"`
	BytesSent int64     `json:"bytes_sent"`
	BytesRecv int64     `json:"bytes_recv"`
	OnlineMS  float64   `json:"online_ms"`
	TotalMS   float64   `json:"total_ms"`
	SetupMS   float64   `json:"setup_ms"`
	PublishMS float64   `json:"publish_ms"`
}

func (c *cli) demoCmd() *cobra.Command {
	var (
		asJSON   bool
		timeout  time.Duration
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "A local swarm in one process: the seed model over 4 holders, [5,3] -> 1022",
		Long: `Run the seed example in one process, on loopback: 5 nodes (4 holders and a
dealer) in temporary repo dirs, and a client that publishes the model
"convnet" (weight [2, 4], bias [1000]) in MPC mode over the 4 holders, then
queries it with the private input [5, 3]. Only the client reconstructs the
answer, 1022; it is checked against the plaintext model. Nothing is left on
disk.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageErrorf("--timeout %v must be positive", timeout)
			}
			level, err := parseLevel(logLevel)
			if err != nil {
				return err
			}
			logger := newLogger(c.stderr, level, true)
			setLibraryLogs(c.getenv, c.stderr, level)
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			v, err := runDemo(ctx, logger, c.progress(asJSON))
			if err != nil {
				return c.explain(ctx, err, timeout)
			}
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			fmt.Fprintf(c.stdout, "secure answer: %s\n", formatTensor(v.Shape, v.Output))
			fmt.Fprintf(c.stdout, "%d online rounds, %s sent and %s received by the busiest holder, online %.1f ms, query %.1f ms\n",
				v.Rounds, formatBytes(v.BytesSent), formatBytes(v.BytesRecv), v.OnlineMS, v.TotalMS)
			return nil
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	cmd.Flags().StringVar(&logLevel, "log-level", "off", "node logs on stderr: debug, info, warn, error, off")
	// The demo ignores --repo (its nodes live in temporary dirs): its help
	// does not list it.
	cmd.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if f := cmd.InheritedFlags().Lookup("repo"); f != nil {
			f.Hidden = true
			defer func() { f.Hidden = false }()
		}
		cmd.Root().HelpFunc()(cmd, args)
	})
	return cmd
}

// progress returns where the demo narrates its steps: stdout in text mode,
// nowhere with --json.
func (c *cli) progress(asJSON bool) io.Writer {
	if asJSON {
		return io.Discard
	}
	return c.stdout
}

// runDemo runs the seed example on a fresh in-process swarm and returns
// what happened. It checks the secure answer against the plaintext model.
func runDemo(ctx context.Context, logger *slog.Logger, out io.Writer) (v *demoView, err error) {
	p, w, err := seedModel()
	if err != nil {
		return nil, fmt.Errorf("seed model: %w", err)
	}
	x, err := tensor.From([]int{len(demoInput)}, append([]float64(nil), demoInput...))
	if err != nil {
		return nil, err
	}
	want, err := plan.EvalPlain(p, w, x)
	if err != nil {
		return nil, fmt.Errorf("plaintext model: %w", err)
	}

	root, err := os.MkdirTemp("", "grid-demo-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(root)

	// A dealer (everyone's bootstrap peer), the holders and a client, each
	// in its own repo dir on 127.0.0.1.
	start := time.Now()
	c, err := nodetest.MakeCluster(ctx, root, nodetest.Config{Holders: demoHolders, Clients: 1, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start the nodes: %w", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the nodes: %w", cerr)
		}
	}()
	client := c.Clients[0]
	setup := time.Since(start)
	fmt.Fprintf(out, "started %d nodes on 127.0.0.1 (%d holders, 1 dealer) and a client in %.0f ms\n",
		demoHolders+1, demoHolders, millis(setup))

	start = time.Now()
	m, err := client.Publish(ctx, demoModel, p, w, node.PublishOptions{Holders: demoHolders})
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", demoModel, err)
	}
	published := time.Since(start)
	fmt.Fprintf(out, "published %q (weight [2, 4], bias [1000]) secret-shared over %d holders in %.0f ms\n",
		demoModel, len(m.Holders), millis(published))

	fmt.Fprintf(out, "querying %q with the private input %s\n", demoModel, formatTensor(x.Shape, x.Data))
	res, err := client.Infer(ctx, demoModel, x, node.InferOptions{})
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", demoModel, err)
	}
	if err := closeTo(res.Output, want.Data, 1e-3); err != nil {
		return nil, fmt.Errorf("secure answer %v differs from the plaintext model's %v: %w", res.Output, want.Data, err)
	}
	v = &demoView{
		Nodes: demoHolders + 1, Model: demoModel, Input: demoInput, Shape: res.Shape, Output: res.Output,
		Plaintext: want.Data, Holders: []string{}, Dealer: res.Dealer, Rounds: res.Rounds,
		BytesSent: res.BytesSent, BytesRecv: res.BytesRecv, OnlineMS: millis(res.Online),
		TotalMS: millis(res.Total), SetupMS: millis(setup), PublishMS: millis(published),
	}
	for _, h := range res.Holders {
		v.Holders = append(v.Holders, h.String())
	}
	fmt.Fprintf(out, "holders %d, dealer %s; the answer matches the plaintext model\n", len(v.Holders), shortID(v.Dealer))
	return v, nil
}

// closeTo checks got against want within tol, elementwise.
func closeTo(got, want []float64, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			return fmt.Errorf("value %d is %g, want %g (tolerance %g)", i, got[i], want[i], tol)
		}
	}
	if len(got) == 0 {
		return errors.New("no values")
	}
	return nil
}
