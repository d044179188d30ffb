// Command grid-load is the load test of issue 5: it runs many concurrent
// inference sessions of the seed model (input [2], 2a + 4b + 1000) against
// its holders on loopback and checks every answer. Each session must end
// with the exact answer or a clear busy or timeout error; a wrong answer,
// any other error, or a session a holder does not free afterwards fails the
// run (exit 1). It reports throughput and latency percentiles.
//
// By default the dealer and the 4 holders are nodes in this process (node
// API); with --grid BINARY they are "grid daemon" processes started through
// cmd/internal/harness. The clients are always in-process peers.
//
//	grid-load                               # 200 concurrent sessions, 4 holders
//	grid-load --sessions 400 --concurrency 100 --max-sessions 64
//	go build -o /tmp/grid ./cmd/grid && grid-load --grid /tmp/grid --json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (0 healthy,
// 1 failed run, 2 bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("grid-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "inference sessions to run")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "sessions in flight at once (0 = all)")
	fs.IntVar(&cfg.Holders, "holders", cfg.Holders, "share holders of the seed model")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "client peers the sessions are spread over")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", cfg.MaxSessions, "each holder's and the dealer's concurrent-session limit (beyond: busy)")
	fs.DurationVar(&cfg.SessionTimeout, "session-timeout", cfg.SessionTimeout, "timeout of one session, on every party")
	fs.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "bound on the whole run")
	fs.StringVar(&cfg.Dealer, "dealer", cfg.Dealer, "dealer: fixed (the cluster's dealer), network (looked up per session), self (clients deal)")
	fs.Float64Var(&cfg.Tolerance, "tolerance", cfg.Tolerance, "largest accepted |answer - exact answer|")
	fs.StringVar(&cfg.GridBin, "grid", "", "run the dealer and holders as daemons of this grid binary (default: in-process nodes)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the repos (default: a temporary one, removed after)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "nodes' logs on stderr (warnings and errors)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "grid-load: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "grid-load: %v\n", err)
		return 2
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "grid-load: %v\n", err)
		if rep == nil {
			return 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	if err != nil || !rep.Healthy() {
		return 1
	}
	return 0
}

// printReport writes the human-readable report.
func printReport(w io.Writer, r *Report) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	fmt.Fprintf(w, "%d sessions (%d at once) of the seed model over %d holders, %s, %d clients, dealer %s, max sessions %d\n",
		r.Sessions, r.Concurrency, r.Holders, r.Mode, r.Clients, r.Dealer, r.MaxSessions)
	fmt.Fprintf(w, "ok %d  busy %d  timeout %d  error %d  wrong %d  (max |error| %.2g)\n",
		r.Counts[OK], r.Counts[Busy], r.Counts[Timeout], r.Counts[Failed], r.Counts[Wrong], r.MaxAbsErr)
	fmt.Fprintf(w, "throughput %.1f sessions/s over %.2f s (setup %.2f s)\n", r.Throughput, r.Elapsed.Seconds(), r.Setup.Seconds())
	fmt.Fprintf(w, "latency p50 %s  p90 %s  p99 %s  max %s  (online p50 %s)\n", ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), ms(r.OnlineP50))
	fmt.Fprintf(w, "after: %g sessions still active", r.ActiveAfter)
	if r.GoroutinesBefore > 0 {
		fmt.Fprintf(w, "; goroutines %d before, %d after", r.GoroutinesBefore, r.GoroutinesAfter)
	}
	fmt.Fprintln(w)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if r.Healthy() {
		fmt.Fprintln(w, "PASS: every answer exact or a clear busy/timeout refusal, nothing left running")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}
