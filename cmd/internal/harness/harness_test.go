package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a fake grid binary when GRID_HARNESS_FAKE is
// set: it speaks the daemon's stdout protocol and serves /api/v0/peers, so
// the harness's process handling is tested without the real network.
const fakeEnv = "GRID_HARNESS_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeMain(mode string, args []string) int {
	if len(args) == 0 {
		return 2
	}
	switch args[0] {
	case "init":
		fmt.Println(`{"id": "12D3KooWFake"}`)
		return 0
	case "fail":
		fmt.Fprintln(os.Stderr, "grid: failed on purpose")
		return 1
	case "daemon":
	default:
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	switch mode {
	case "exit-early":
		fmt.Fprintln(os.Stderr, "cannot open repo")
		return 3
	case "hang":
		time.Sleep(time.Minute)
		return 0
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v0/peers", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"peers": []PeerInfo{{ID: "a"}, {ID: "b"}}})
	})
	go func() { _ = http.Serve(l, mux) }()
	fmt.Println("peer ID 12D3KooWFake")
	fmt.Println("listening on /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWFake")
	fmt.Println("API server listening on " + l.Addr().String())
	fmt.Println("daemon is ready")
	fmt.Fprintln(os.Stderr, "log line")
	if mode == "ignore-term" {
		time.Sleep(time.Minute)
		return 0
	}
	<-sigs
	return 0
}

func fakeOpts(t *testing.T, mode string) Options {
	t.Helper()
	return Options{Bin: os.Args[0], Env: []string{fakeEnv + "=" + mode}, ReadyTimeout: 5 * time.Second, StopTimeout: 2 * time.Second}
}

func TestStartDaemonParsesAndStops(t *testing.T) {
	ctx := context.Background()
	repo := filepath.Join(t.TempDir(), "node0")
	d, err := StartDaemon(ctx, fakeOpts(t, "ok"), repo, "--listen", "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	if d.ID != "12D3KooWFake" || d.Addr() != "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWFake" || d.API == "" {
		t.Fatalf("parsed ID %q addrs %v api %q", d.ID, d.Addrs, d.API)
	}
	peers, err := d.Peers(ctx)
	if err != nil || len(peers) != 2 {
		t.Fatalf("peers %v, %v", peers, err)
	}
	if err := WaitPeers(ctx, 2, d); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d.Running() {
		t.Fatal("still running after Stop")
	}
	if !strings.Contains(d.LogTail(100), "log line") {
		t.Fatalf("stderr not logged: %q", d.LogTail(100))
	}
}

func TestStartDaemonFailures(t *testing.T) {
	tests := []struct {
		mode string
		want string
	}{
		{"exit-early", "exited before it was ready"},
		{"hang", "not ready after"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			opts := fakeOpts(t, tt.mode)
			opts.ReadyTimeout = 500 * time.Millisecond
			d, err := StartDaemon(context.Background(), opts, filepath.Join(t.TempDir(), "r"))
			if err == nil {
				d.Kill()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	opts := fakeOpts(t, "ignore-term")
	opts.StopTimeout = 300 * time.Millisecond
	d, err := StartDaemon(context.Background(), opts, filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Stop()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("stop error %v, want killed", err)
	}
	if d.Running() {
		t.Fatal("still running")
	}
}

func TestRunAndInit(t *testing.T) {
	ctx := context.Background()
	opts := fakeOpts(t, "ok")
	res, err := Run(ctx, opts.Bin, opts.Env, "fail")
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 1 || !strings.Contains(res.Stderr, "failed on purpose") {
		t.Fatalf("result %v", res)
	}
	t.Setenv(fakeEnv, "ok") // Init passes no extra env
	id, err := Init(ctx, opts.Bin, filepath.Join(t.TempDir(), "r"))
	if err != nil || id != "12D3KooWFake" {
		t.Fatalf("init: %q, %v", id, err)
	}
}

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
	if d, err = s.StartWith(ctx, 1, []string{"/ip4/127.0.0.1/tcp/4002"}, "--announce", "/ip4/127.0.0.1/tcp/9"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.Args, " "); !strings.HasPrefix(got, "--listen /ip4/127.0.0.1/tcp/4002 --api") || !strings.HasSuffix(got, "--announce /ip4/127.0.0.1/tcp/9") {
		t.Fatalf("StartWith args %v", d.Args)
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

func TestDecodePeers(t *testing.T) {
	ps, err := DecodePeers([]byte(`{"peers":[{"id":"x","addrs":["/ip4/127.0.0.1/tcp/1"]}]}`))
	if err != nil || len(ps) != 1 || ps[0].ID != "x" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := DecodePeers([]byte(`[`)); err == nil {
		t.Fatal("no error on bad json")
	}
}

// FuzzDecodePeers checks that decoding a daemon's peers answer never panics.
func FuzzDecodePeers(f *testing.F) {
	for _, s := range []string{`{"peers":[]}`, `{"peers":[{"id":"a","addrs":["x"]}]}`, `[`, `null`, `{"peers":null}`, `{"peers":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := DecodePeers(b)
		if err != nil && ps != nil {
			t.Fatalf("error %v with peers %v", err, ps)
		}
	})
}
