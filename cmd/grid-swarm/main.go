// Command grid-swarm runs testground-style scenarios (seed, scale, churn,
// wan) against a local swarm of real "grid daemon" processes on loopback and
// reports the results as JSON, PNG plots and a summary table. See
// docs/SWARMS.md, and scripts/swarm.sh, which builds both binaries and runs
// it.
package main

import (
	"os"

	"github.com/gridmpc/grid/cmd/internal/swarm"
)

func main() {
	os.Exit(swarm.Main(os.Args[1:], os.Stdout, os.Stderr))
}
