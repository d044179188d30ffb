//go:build gridfault

package engine

import "github.com/gridmpc/grid/mpcproto/dealer"

// carrySwitchable: gridfault builds can run two-party sessions on the
// carry circuit (withCarryForTwo).
const carrySwitchable = true

// withCarryForTwo switches two-party sessions to the carry circuit (for
// benchmarks comparing it with the sign gates) and returns the function
// that switches them back.
func withCarryForTwo() (restore func()) { return dealer.SetCarryForTwo(true) }
