package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Proc is a one-shot command (e.g. a grid client command) running in the
// background, started by Start; its output is kept in memory.
type Proc struct {
	Started time.Time // when it was started
	Ended   time.Time // when it exited; valid once Running is false

	args           []string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{} // closed when the process has exited
	err            error         // valid after done
}

// Start starts bin with args in the background; env is added to the
// process's environment. Like the daemons, it gets its own process group
// and, on Linux, SIGKILL if the process that started it dies. The caller
// must Wait for it or Kill it.
func Start(bin string, env []string, args ...string) (*Proc, error) {
	p := &Proc{args: args, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = sysProcAttr()
	p.cmd.WaitDelay = time.Second // bounds Wait if a grandchild keeps the output open
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.Started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", p.name(), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.Ended = time.Now()
		close(p.done)
	}()
	return p, nil
}

// name is the command line for error messages: the binary's base name and
// the arguments.
func (p *Proc) name() string {
	return strings.TrimSpace(filepath.Base(p.cmd.Path) + " " + strings.Join(p.args, " "))
}

// Kill sends SIGKILL to the command (if it still runs) and waits for it.
func (p *Proc) Kill() {
	if !closed(p.done) {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Running reports whether the command has not exited.
func (p *Proc) Running() bool { return !closed(p.done) }

// Wait waits for the command to exit, at most until ctx ends (it is then
// killed), and returns its result. The error is set when ctx ended first
// or the command's exit could not be read; a non-zero exit, or the -1 of a
// command killed by a signal, is a Result.
func (p *Proc) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Kill()
		return p.result(), fmt.Errorf("run %s: %w", p.name(), ctx.Err())
	}
	res := p.result()
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return res, fmt.Errorf("run %s: %w", p.name(), p.err)
	}
	return res, nil
}

// result is the command's output and exit code; only after done.
func (p *Proc) result() Result {
	r := Result{Args: p.args, Stdout: p.stdout.String(), Stderr: p.stderr.String()}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		r.Code = exit.ExitCode()
	} else if p.err != nil {
		r.Code = -1
	}
	return r
}

// Run runs bin with args to completion (Start, then Wait). env is added
// to the process's environment. The returned error is set only when the
// process could not run or ctx ended first (it is then killed); a
// non-zero exit is a Result.
func Run(ctx context.Context, bin string, env []string, args ...string) (Result, error) {
	p, err := Start(bin, env, args...)
	if err != nil {
		return Result{Args: args}, err
	}
	return p.Wait(ctx)
}
