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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	args := append([]string{"init", "--profile", "test", "--repo", repo, "--json"}, extra...)
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

// SetSessions writes fields (e.g. "Timeout": "6s", "Max": 64) into the
// Sessions section of the repo's config file, keeping every other field,
// and writes the file back with mode 0600 (it holds the private key).
func SetSessions(repo string, fields map[string]any) error {
	path := filepath.Join(repo, "config")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("session config: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("session config: decode %s: %w", path, err)
	}
	sessions, _ := cfg["Sessions"].(map[string]any)
	if sessions == nil {
		sessions = map[string]any{}
	}
	for k, v := range fields {
		sessions[k] = v
	}
	cfg["Sessions"] = sessions
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("session config: %w", err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("session config: %w", err)
	}
	return nil
}
