package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Daemon is one running "grid daemon" process.
type Daemon struct {
	Repo  string   // its repo dir
	ID    string   // its peer ID, as printed
	Addrs []string // its addresses with /p2p/, as printed
	API   string   // its HTTP API host:port, "" if off
	Args  []string // the daemon flags it was started with (after --repo)

	opts    Options
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done

	mu     sync.Mutex
	stdout bytes.Buffer // everything printed on stdout
}

// StartDaemon starts "grid daemon --repo repo args..." and waits (at most
// Options.ReadyTimeout) for its ready line. Its stderr goes to repo+".log".
// On error the process is killed.
func StartDaemon(ctx context.Context, opts Options, repo string, args ...string) (*Daemon, error) {
	if opts.Bin == "" {
		return nil, errors.New("harness: Options.Bin is empty")
	}
	d, stdout, err := launch(opts, repo, args)
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		d.scan(stdout, ready)
	}()
	go func() {
		<-drained // Wait must not run before stdout is drained
		d.waitErr = d.cmd.Wait()
		d.logFile.Close()
		close(d.done)
	}()
	return d.waitReady(ctx, ready)
}

// launch starts the daemon process with its stderr in repo+".log" and
// returns it with its stdout.
func launch(opts Options, repo string, args []string) (*Daemon, io.Reader, error) {
	logPath := repo + ".log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open daemon log: %w", err)
	}
	cmd := exec.Command(opts.Bin, append([]string{"daemon", "--repo", repo}, args...)...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = logFile
	pr, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("daemon stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("start %s daemon: %w", opts.Bin, err)
	}
	return &Daemon{Repo: repo, Args: args, opts: opts, cmd: cmd, logPath: logPath, logFile: logFile,
		done: make(chan struct{})}, pr, nil
}

// scan keeps the daemon's stdout and parses its protocol lines until the
// ready line, which closes ready; it returns when stdout is drained.
func (d *Daemon) scan(stdout io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	isReady := false
	for sc.Scan() {
		line := sc.Text()
		d.mu.Lock()
		d.stdout.WriteString(line + "\n")
		if !isReady && d.parseLine(line) {
			isReady = true
			close(ready)
		}
		d.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, stdout)
}

// parseLine records one line of the stdout protocol; it reports whether
// it is the ready line.
func (d *Daemon) parseLine(line string) bool {
	switch {
	case strings.HasPrefix(line, PrefixPeerID):
		d.ID = strings.TrimSpace(strings.TrimPrefix(line, PrefixPeerID))
	case strings.HasPrefix(line, PrefixAddr):
		d.Addrs = append(d.Addrs, strings.TrimSpace(strings.TrimPrefix(line, PrefixAddr)))
	case strings.HasPrefix(line, PrefixAPI):
		d.API = strings.TrimSpace(strings.TrimPrefix(line, PrefixAPI))
	case strings.TrimSpace(line) == ReadyLine:
		return true
	}
	return false
}

// waitReady waits for the ready line, the process's exit, the ready
// timeout or ctx, and kills the daemon unless it is ready.
func (d *Daemon) waitReady(ctx context.Context, ready <-chan struct{}) (*Daemon, error) {
	timer := time.NewTimer(d.opts.readyTimeout())
	defer timer.Stop()
	select {
	case <-ready:
		d.mu.Lock()
		ok, stdout := d.ID != "" && len(d.Addrs) > 0, d.stdout.String()
		d.mu.Unlock()
		if !ok {
			d.kill()
			return nil, fmt.Errorf("daemon %s was ready without printing its peer ID and addresses; stdout: %q", d.Repo, stdout)
		}
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("daemon %s exited before it was ready (%v): %s", d.Repo, d.waitErr, d.LogTail(2048))
	case <-timer.C:
		d.kill()
		return nil, fmt.Errorf("daemon %s not ready after %s: %s", d.Repo, d.opts.readyTimeout(), d.LogTail(2048))
	case <-ctx.Done():
		d.kill()
		return nil, fmt.Errorf("start daemon %s: %w", d.Repo, ctx.Err())
	}
}

// PID is the daemon's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Addr is the daemon's first address (with /p2p/), for --bootstrap.
func (d *Daemon) Addr() string { return d.Addrs[0] }

// Done is closed when the daemon process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Running reports whether the process has not exited yet.
func (d *Daemon) Running() bool { return !closed(d.done) }

// closed reports whether ch is closed (for a done channel: whether the
// process has exited), without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Stdout returns everything the daemon printed on stdout so far.
func (d *Daemon) Stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stdout.String()
}

// LogPath is the file holding the daemon's stderr (its logs).
func (d *Daemon) LogPath() string { return d.logPath }

// LogTail returns the last max bytes of the daemon's stderr log.
func (d *Daemon) LogTail(max int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Stop sends SIGTERM and waits for a clean exit; after Options.StopTimeout
// it sends SIGKILL. It returns an error unless the daemon exited with code 0
// on its own within the grace time. Stopping an exited daemon returns its
// exit status again.
func (d *Daemon) Stop() error {
	if d.Running() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			d.kill()
			return fmt.Errorf("signal daemon %d: %w", d.PID(), err)
		}
	}
	timer := time.NewTimer(d.opts.stopTimeout())
	defer timer.Stop()
	select {
	case <-d.done:
		if d.waitErr != nil {
			return fmt.Errorf("daemon %d (%s) did not exit cleanly: %w", d.PID(), d.Repo, d.waitErr)
		}
		return nil
	case <-timer.C:
		d.kill()
		return fmt.Errorf("daemon %d (%s) still running %s after SIGTERM; killed", d.PID(), d.Repo, d.opts.stopTimeout())
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (d *Daemon) Kill() { d.kill() }

func (d *Daemon) kill() {
	if d.Running() {
		_ = d.cmd.Process.Kill()
	}
	<-d.done
}

// RSSKiB reads the daemon's resident set size (RSSKiB of its PID).
func (d *Daemon) RSSKiB() (int64, error) { return RSSKiB(d.PID()) }

// Peers asks the daemon's HTTP API for its connected peers.
func (d *Daemon) Peers(ctx context.Context) ([]PeerInfo, error) {
	if d.API == "" {
		return nil, fmt.Errorf("daemon %s has no HTTP API", d.Repo)
	}
	body, err := Get(ctx, d.API, PathPeers, MaxPeersBody)
	if err != nil {
		return nil, err
	}
	return DecodePeers(body)
}
