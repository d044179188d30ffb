//go:build !gridfault

package engine

// carrySwitchable: without the gridfault build tag two-party sessions
// always take sign gates.
const carrySwitchable = false

// withCarryForTwo does nothing in this build (see carrySwitchable).
func withCarryForTwo() (restore func()) { return func() {} }
