//go:build !gridfault

package dealer

import "github.com/gridmpc/grid/mpcproto/share"

// Without the gridfault build tag no fault can be switched on and no draw
// is observed: these functions do nothing (or return a constant false),
// so the compiler drops them and every faulty branch. fault_on.go has the
// faults and the test hooks.

// applyFaults changes a request's freshly drawn random parts (a party's
// shares, or their values on the dealer's side): never in this build.
func applyFaults(*Request, [][]uint64) {}

// faultMaskStreamRestart reports whether every weight's mask restarts the
// party's mask stream: never in this build.
func faultMaskStreamRestart() bool { return false }

// tapDraw shows a random part's words, just drawn from a stream, to the
// test hook: nothing to do in this build.
func tapDraw(share.Seed, int, *Request, int, bool, []uint64) {}

// carryForTwo reports whether two-party sessions use the carry circuit
// instead of sign gates: never in this build.
func carryForTwo() bool { return false }

// tapMaskDraw is tapDraw for a weight mask's words.
func tapMaskDraw(share.Seed, int, string, []uint64) {}
