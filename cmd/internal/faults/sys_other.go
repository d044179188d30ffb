//go:build !linux

package faults

import "syscall"

// sysProcAttr gives a background command its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
