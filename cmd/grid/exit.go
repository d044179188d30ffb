package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gridmpc/grid/node"
)

// Exit codes of the grid command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // runtime failure: network, unknown model, refused query
	exitUsage   = 2 // bad usage or bad input: flags, arguments, files, values, shapes
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error that exits with code 2 (bad usage or input).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// badInput marks err as bad user input (exit code 2), keeping its chain.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitUsage, err: err}
}

// exitCode maps an error to the process exit code. Errors that carry no
// code come from cobra's flag and argument parsing, which runs before any
// command, so they are usage errors; commands wrap their own errors through
// runE, which gives them code 1 unless they say otherwise.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, node.ErrModelExists) {
		return exitUsage // publish without --update: the user's call to make
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

// oneLine flattens an error message to a single line for stderr.
func oneLine(msg string) string {
	var parts []string
	for _, l := range strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
