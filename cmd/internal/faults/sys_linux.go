//go:build linux

package faults

import "syscall"

// sysProcAttr gives a background command its own process group and asks
// the kernel to SIGKILL it if the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
