// Package harness runs real grid processes for end-to-end tests and local
// swarms: it builds the binary, creates repo dirs with "grid init", starts
// "grid daemon" processes on loopback, parses the addresses they print,
// waits until they see each other (polling their HTTP API, never a fixed
// sleep), runs one-shot commands, and stops every process it started by PID.
//
// Every wait is bounded by a context or a timeout. Callers must call
// Swarm.Close (or Daemon.Kill) on every path, e.g. with t.Cleanup; children
// also get SIGKILL from the kernel if the process that started them dies
// (Linux parent-death signal), so a crashed test leaves nothing running.
//
// The daemon's stdout protocol the harness parses (printed by grid daemon):
//
//	peer ID <peer ID>
//	listening on <multiaddr with /p2p/>     (one line per address)
//	API server listening on <host:port>     (when the HTTP API is on)
//	daemon is ready
package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lines of the daemon's stdout protocol.
const (
	PrefixPeerID = "peer ID "
	PrefixAddr   = "listening on "
	PrefixAPI    = "API server listening on "
	ReadyLine    = "daemon is ready"
)

// Defaults for bounded waits.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Build compiles ./cmd/grid of the module containing the current directory
// into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	return BuildPackage(ctx, dir, "github.com/gridmpc/grid/cmd/grid", "grid")
}

// BuildPackage compiles the Go package pkg into dir/name and returns the path.
func BuildPackage(ctx context.Context, dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(buf.String()))
	}
	return out, nil
}

// Result is the outcome of a one-shot command.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int // exit code; -1 if killed by a signal
}

// String describes the result for test failure messages.
func (r Result) String() string {
	return fmt.Sprintf("grid %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Init creates a repo at repo with "grid init --json" (plus extra args) and
// returns its peer ID.
func Init(ctx context.Context, bin, repo string, extra ...string) (string, error) {
	return initRepo(ctx, Options{Bin: bin}, repo, extra...)
}

func initRepo(ctx context.Context, opts Options, repo string, extra ...string) (string, error) {
	args := append([]string{"init", "--repo", repo, "--json"}, extra...)
	res, err := Run(ctx, opts.Bin, opts.Env, args...)
	if err != nil {
		return "", err
	}
	if res.Code != 0 {
		return "", fmt.Errorf("grid init --repo %s: exit %d: %s", repo, res.Code, strings.TrimSpace(res.Stderr))
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("grid init --repo %s: unexpected output %q", repo, res.Stdout)
	}
	return out.ID, nil
}

// Options configures how daemons are started.
type Options struct {
	Bin          string        // the grid binary (required)
	Env          []string      // extra environment, e.g. for fakes in tests
	ReadyTimeout time.Duration // how long to wait for the ready line (default DefaultReadyTimeout)
	StopTimeout  time.Duration // SIGTERM grace before SIGKILL (default DefaultStopTimeout)
}

func (o Options) readyTimeout() time.Duration {
	if o.ReadyTimeout > 0 {
		return o.ReadyTimeout
	}
	return DefaultReadyTimeout
}

func (o Options) stopTimeout() time.Duration {
	if o.StopTimeout > 0 {
		return o.StopTimeout
	}
	return DefaultStopTimeout
}

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
