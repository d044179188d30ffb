package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// procRoot is where process information is read (Linux /proc).
const procRoot = "/proc"

// RSSKiB returns the resident set size of process pid in KiB, read from
// /proc/PID/status (VmRSS).
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	v, err := parseVmRSS(b)
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	return v, nil
}

// parseVmRSS finds the "VmRSS:  1234 kB" line of a /proc/PID/status file.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", sc.Text())
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("malformed VmRSS value %q", f[0])
		}
		return v, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie)")
}

// ProcessesOf returns the PIDs of running processes whose executable is bin
// (an absolute path), other than this process. Built into a fresh
// directory, a binary runs only as the processes this run started: none may
// be left once the run is over (the swarm runner checks that).
func ProcessesOf(bin string) ([]int, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", bin, err)
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", bin, err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		exe, err := os.Readlink(filepath.Join(procRoot, e.Name(), "exe"))
		if err != nil {
			continue // gone, a kernel thread, or not ours to read
		}
		if strings.TrimSuffix(exe, " (deleted)") == bin && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// isZombie reports whether pid has exited but not been reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // gone meanwhile
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z'
}
