// Command grid is the command-line interface of the grid network: it creates
// a node's repo, runs the node daemon, publishes models, lists and queries
// them, and runs a one-process demo swarm.
//
// The commands are a thin layer over package node: flags become a
// node.Config, results are formatted as text or JSON (--json), and errors are
// one line on stderr prefixed with "grid: ". Exit codes: 0 ok, 1 runtime
// failure, 2 bad usage or bad input.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: commands stop cleanly (the
	// daemon closes its node). Then the default handling is restored, so a
	// second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
