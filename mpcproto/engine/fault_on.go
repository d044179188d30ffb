//go:build gridfault

package engine

import "github.com/gridmpc/grid/mpcproto/dealer"

// Faults are deliberate flaws of the engine that keep every output correct
// and only break privacy, for tests to check that the privacy checks detect
// them. They exist only in builds with the gridfault tag; the dealer's
// faults are dealer.Faults.
type Faults struct {
	// SkipRerandomization makes holders return their raw output shares:
	// the seeds still travel (same traffic), but no share of zero is
	// added, so a client colluding with the dealer reads hidden values
	// (a final ReLU's pre-activation) off the shares.
	SkipRerandomization bool
}

var faults dealer.FaultSwitch[Faults]

// SetFaults switches on exactly the faults in f for every later session in
// the process and returns a function that restores the previous set. Tests
// that use it must not run in parallel with other sessions.
func SetFaults(f Faults) (restore func()) { return faults.Set(f) }

// ActiveFaults returns the faults switched on.
func ActiveFaults() Faults { return faults.Active() }

func faultSkipRerandomization() bool { return ActiveFaults().SkipRerandomization }
