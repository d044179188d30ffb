//go:build !gridfault

package engine

// Without the gridfault build tag no fault can be switched on: the switch
// is a constant false, so the compiler drops every faulty branch (see
// fault_on.go for the faults).

// faultSkipRerandomization reports whether holders return their raw output
// shares: never in this build.
func faultSkipRerandomization() bool { return false }
