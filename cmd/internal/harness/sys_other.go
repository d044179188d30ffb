//go:build !linux

package harness

import "syscall"

// sysProcAttr puts children in their own process group, so that a Ctrl-C on
// the terminal reaches only the runner, which stops them by PID.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
