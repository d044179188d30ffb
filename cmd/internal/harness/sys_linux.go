//go:build linux

package harness

import "syscall"

// sysProcAttr puts children in their own process group (a Ctrl-C on the
// terminal reaches only the runner, which stops them by PID) and asks the
// kernel to SIGKILL them if the process that started them dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
