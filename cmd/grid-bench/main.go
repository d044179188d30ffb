// Command grid-bench runs one model end to end between real daemons and
// prints its figures (issue 14): a dealer and --holders holders as "grid
// daemon" processes on 127.0.0.1 (cmd/internal/harness), a client repo that
// publishes the model and runs --queries one-shot "grid infer" commands.
//
// It reports the first query's time (after the dealer's warm session has
// opened the weight masks, which it waits for and times) and the later
// queries' median and p90, each from the start of "grid infer" to its
// exit; the online rounds and the busiest holder's bytes (from "grid infer
// --json"); the bytes each holder and the dealer sent and received per
// query (from their Prometheus metrics, grid_bytes_*_total); each daemon's
// peak RSS (VmHWM in /proc/PID/status); and, when /usr/bin/python3 can
// import torch, PyTorch's single-thread time for the same ONNX model and
// input (scripts/bench_torch.py), with the largest difference between its
// output and grid's. The load average is printed beside the figures: the
// machine may be shared.
//
//	go run ./cmd/grid-bench --model digits-cnn --holders 3 --queries 10
//	go run ./cmd/grid-bench --model $GRID_FULL/resnet18.onnx --batch 8 --json
//
// Models: seed (testdata/seed.onnx, input 5,3), digits-mlp and digits-cnn
// (testdata/digits_*.onnx, the first samples of testdata/digits_sample*.npy)
// or any ONNX file (a uniform random input in [-1, 1] of its input shape).
// Exit codes: 0 done, 1 a failed run, 2 bad usage.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("grid-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Model, "model", cfg.Model, "seed, digits-mlp, digits-cnn or an ONNX file")
	fs.IntVar(&cfg.Holders, "holders", cfg.Holders, "share holders (2 or 3)")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "samples per query (1 or 8; the seed takes 1)")
	fs.IntVar(&cfg.Queries, "queries", cfg.Queries, "queries to run (the first, then the steady ones)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole run")
	fs.StringVar(&cfg.GridBin, "grid", "", "the grid binary (default: build ./cmd/grid)")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "the module's root (testdata/, scripts/)")
	fs.BoolVar(&cfg.NoTorch, "no-torch", false, "skip the PyTorch measurement")
	fs.BoolVar(&cfg.NoWaitWarm, "no-wait-warm", false, "query right after publish, without waiting for the dealer's warm session (grids without one)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "grid-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "grid-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rep, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "grid-bench: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "grid-bench: %v\n", err)
			return 1
		}
		return 0
	}
	rep.Print(stdout)
	return 0
}

// Config is one benchmark run.
type Config struct {
	Model   string        // seed, digits-mlp, digits-cnn or an ONNX file
	Holders int           // 2 or 3
	Batch   int           // 1 or 8
	Queries int           // at least 2
	Timeout time.Duration // the whole run
	GridBin string        // "" builds ./cmd/grid
	Root    string        // the module root
	NoTorch bool          // skip PyTorch
	// NoWaitWarm queries right after publish instead of waiting for the
	// dealer's warm session (for a grid binary without warm sessions).
	NoWaitWarm bool
}

// DefaultConfig is the digits CNN over 3 holders, batch 1, 10 queries.
func DefaultConfig() Config {
	return Config{Model: "digits-cnn", Holders: 3, Batch: 1, Queries: 10, Timeout: 30 * time.Minute, Root: "."}
}

// Validate checks the flags' values.
func (c Config) Validate() error {
	switch {
	case c.Holders != 2 && c.Holders != 3:
		return fmt.Errorf("--holders %d: 2 or 3", c.Holders)
	case c.Batch != 1 && c.Batch != 8:
		return fmt.Errorf("--batch %d: 1 or 8", c.Batch)
	case c.Model == "seed" && c.Batch != 1:
		return fmt.Errorf("--batch %d: the seed model takes one sample", c.Batch)
	case c.Queries < 2 || c.Queries > 10000:
		return fmt.Errorf("--queries %d: 2 to 10000", c.Queries)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout %s: must be positive", c.Timeout)
	}
	return nil
}
