package harness

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/delayproxy"
)

func TestSwarmLifecycle(t *testing.T) {
	ctx := context.Background()
	var prepared []int
	var mu sync.Mutex
	cfg := SwarmConfig{N: 3, MinPeers: 2, Timeout: 20 * time.Second, Prepare: func(i int, repo string) error {
		mu.Lock()
		defer mu.Unlock()
		prepared = append(prepared, i)
		return os.WriteFile(repo+".prepared", nil, 0o600)
	}}
	s, err := NewSwarm(ctx, fakeOpts(t, "ok"), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := os.Stat(s.Repos[2] + ".prepared"); err != nil || !slices.Equal(prepared, []int{0, 1, 2}) {
		t.Fatalf("prepared %v, %v", prepared, err)
	}
	if s.Index(s.IDs[1]) != 0 || s.Index("12D3KooWNone") != -1 {
		t.Fatalf("Index: %d, %d (the fake gives every daemon one ID)", s.Index(s.IDs[1]), s.Index("12D3KooWNone"))
	}
	if len(s.Running()) != 3 || s.Bootstrap() == "" {
		t.Fatalf("running %d, bootstrap %q", len(s.Running()), s.Bootstrap())
	}
	want := []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--bootstrap", s.Bootstrap()}
	if got := s.Daemon(1).Args; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("daemon 1 args %v, want %v", got, want)
	}
	if err := s.Stop(1); err != nil {
		t.Fatal(err)
	}
	d, err := s.Start(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Args[1] != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("restart does not pin the port: %v", d.Args)
	}
	if _, err := s.Start(ctx, 1); err == nil {
		t.Fatal("started a running daemon")
	}
	s.Kill(1)
	d, proxy, err := s.StartProxied(ctx, 1, delayproxy.Config{Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	announce := "/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(proxy.Addr().String(), "127.0.0.1:")
	if got := strings.Join(d.Args, " "); !strings.HasPrefix(got, "--listen /ip4/127.0.0.1/tcp/") || !strings.Contains(got, "--announce "+announce+" --api") {
		t.Fatalf("StartProxied args %v, want a new port announcing %s", d.Args, announce)
	}
	if d.Addr() != announce+"/p2p/12D3KooWFake" {
		t.Fatalf("StartProxied daemon printed %s", d.Addr())
	}
	if err := s.Stop(1); err != nil {
		t.Fatal(err)
	}
	proxy.Close()
	if d, err = s.Start(ctx, 1); err != nil || d.Args[1] != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("Start after StartProxied: %v, %v; want the first port again", d, err)
	}
	i, _, err := s.Add(ctx)
	if err != nil || i != 3 {
		t.Fatalf("add: %d, %v", i, err)
	}
	if !slices.Equal(prepared, []int{0, 1, 2, 3}) {
		t.Fatalf("Add did not prepare the new repo: %v", prepared)
	}
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	if len(s.Running()) != 0 {
		t.Fatal("daemons left")
	}
}

// TestSwarmFixedPortsAndProxies covers what the scenario runner asks of a
// swarm: fixed ports, a delaying proxy per daemon, parallel starts, client
// repos and commands, metrics, stop errors and the removal of the repos.
func TestSwarmFixedPortsAndProxies(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var clients []string
	opts := fakeOpts(t, "ok")
	s, err := CreateSwarm(ctx, opts, root, SwarmConfig{N: 3, Delay: 5 * time.Millisecond, Parallel: 2,
		Prepare: func(i int, repo string) error {
			if i < 0 {
				clients = append(clients, filepath.Base(repo))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if s.Len() != 3 || len(s.Running()) != 0 || s.Bootstrap() != "" {
		t.Fatalf("CreateSwarm started something: %d running, bootstrap %q", len(s.Running()), s.Bootstrap())
	}
	if err := s.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := s.members[i]
		if len(m.listen) != 1 || m.listen[0] == "/ip4/127.0.0.1/tcp/0" || len(m.announce) != 1 {
			t.Fatalf("daemon %d: listen %v announce %v, want a fixed port behind a proxy", i, m.listen, m.announce)
		}
		if got := s.Daemon(i).Addr(); got != m.announce[0]+"/p2p/12D3KooWFake" {
			t.Fatalf("daemon %d printed %s, want its proxy", i, got)
		}
	}
	if s.Bootstrap() != s.Daemon(0).Addr() || !slices.Contains(s.Daemon(2).Args, s.Bootstrap()) {
		t.Fatalf("bootstrap %q, daemon 2 args %v", s.Bootstrap(), s.Daemon(2).Args)
	}
	if err := s.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if v, err := s.WaitMetric(ctx, 1, "go_goroutines", func(v float64) bool { return v == 7 }); err != nil || v != 7 {
		t.Fatalf("WaitMetric = %v, %v", v, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.WaitMetric(short, 1, "go_goroutines", func(v float64) bool { return v > 7 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitMetric past its deadline: %v", err)
	}
	if rss, err := s.Daemon(0).RSSKiB(); err != nil || rss <= 0 {
		t.Fatalf("RSSKiB = %d, %v", rss, err)
	}

	client, err := s.NewClient(ctx, "user")
	if err != nil || client != filepath.Join(root, "user") || !slices.Equal(clients, []string{"user"}) {
		t.Fatalf("NewClient = %q, %v; prepared %v", client, err, clients)
	}
	t.Setenv(fakeEnv, "ok") // the fake's mode for the client commands
	res, err := s.Grid(ctx, client, "env")
	if err != nil || strings.TrimSpace(res.Stdout) != client+" "+s.Bootstrap() {
		t.Fatalf("a client command's environment: %q, %v", res.Stdout, err)
	}
	p, err := s.StartGrid(client, "daemon")
	if err != nil {
		t.Fatal(err)
	}

	s.Kill(2)
	if _, err := s.Metric(ctx, 2, "go_goroutines"); err == nil {
		t.Fatal("a metric of a killed daemon")
	}
	if _, err := s.Start(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s.Opts.Env = append(s.Opts.Env, fakeIDEnv+"=12D3KooWOther")
	if err := s.Stop(2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, 2); err == nil || !strings.Contains(err.Error(), "printed peer ID 12D3KooWOther") {
		t.Fatalf("a daemon back with another identity: %v", err)
	}
	s.Opts.Env = opts.Env
	if err := s.StopAll(); err != nil || len(s.StopErrors()) != 0 {
		t.Fatalf("StopAll: %v, stop errors %v", err, s.StopErrors())
	}
	s.Close()
	if p.Running() {
		t.Fatal("Close left a client command running")
	}
	s.RemoveRepos()
	for _, r := range append(slices.Clone(s.Repos), client) {
		if _, err := os.Stat(r); err == nil {
			t.Errorf("%s not removed", r)
		}
	}
	if logs, _ := filepath.Glob(filepath.Join(root, "node*.log")); len(logs) != 3 {
		t.Errorf("logs %v, want the 3 daemons' kept", logs)
	}
}

// TestSwarmPortTaken: a fixed port taken before the daemon binds it is
// replaced by another, and daemon 0's new address becomes the bootstrap.
func TestSwarmPortTaken(t *testing.T) {
	ctx := context.Background()
	var logs []string
	var mu sync.Mutex
	s, err := CreateSwarm(ctx, fakeOpts(t, "ok"), t.TempDir(), SwarmConfig{N: 1, FixedPorts: true,
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			logs = append(logs, format)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	taken := s.members[0].listen[0]
	ln, err := net.Listen("tcp", "127.0.0.1:"+taken[strings.LastIndexByte(taken, '/')+1:])
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := s.Start(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Args[1] == taken || s.members[0].listen[0] != d.Args[1] || s.Bootstrap() != d.Addr() || len(logs) != 1 {
		t.Fatalf("port %s taken: started with %v, bootstrap %s, logs %v", taken, d.Args, s.Bootstrap(), logs)
	}
}

// TestSwarmStopErrors: a daemon ignoring SIGTERM is killed after the grace
// time, and the unclean stop is kept.
func TestSwarmStopErrors(t *testing.T) {
	opts := fakeOpts(t, "ignore-term")
	opts.StopTimeout = 200 * time.Millisecond
	s, err := NewSwarm(context.Background(), opts, t.TempDir(), SwarmConfig{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.StopAll(); err == nil {
		t.Fatal("StopAll of daemons ignoring SIGTERM succeeded")
	}
	if got := s.StopErrors(); len(got) != 2 || !strings.HasPrefix(got[0], "node") || !strings.Contains(got[0], "killed") {
		t.Fatalf("StopErrors = %v", got)
	}
	if len(s.Running()) != 0 {
		t.Fatal("daemons left")
	}
	if _, err := NewSwarm(context.Background(), opts, t.TempDir(), SwarmConfig{}); err == nil {
		t.Fatal("a swarm of no daemons")
	}
}
