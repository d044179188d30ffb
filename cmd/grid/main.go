// Command grid is the command-line interface of the grid network: it runs a
// node daemon, publishes models, discovers and queries them.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "grid: not built yet")
	os.Exit(1)
}
