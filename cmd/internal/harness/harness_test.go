package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	case "env":
		fmt.Println(os.Getenv("GRID_PATH") + " " + os.Getenv("GRID_BOOTSTRAP"))
		return 0
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
	addr, code := fakeListen(args)
	if code != 0 {
		return code
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v0/peers", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"peers": []PeerInfo{{ID: "a"}, {ID: "b"}}})
	})
	mux.HandleFunc(PathMetrics, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "grid_sessions_active 0\ngo_goroutines 7\n")
	})
	go func() { _ = http.Serve(l, mux) }()
	id := cmp.Or(os.Getenv(fakeIDEnv), "12D3KooWFake")
	fmt.Println("peer ID " + id)
	fmt.Println("listening on " + addr + "/p2p/" + id)
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

// fakeIDEnv, when set, is the peer ID the fake daemon prints.
const fakeIDEnv = "GRID_HARNESS_FAKE_ID"

// fakeListen binds the fake daemon's first --listen port, as the daemon
// would (failing like it when the port is taken), and returns the address
// it prints: the first --announce, else the --listen address, with port
// 4001 for a port of the kernel's choice.
func fakeListen(args []string) (string, int) {
	var listen, announce []string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			listen = append(listen, args[i+1])
		case "--announce":
			announce = append(announce, args[i+1])
		}
	}
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	port := listen[0][strings.LastIndexByte(listen[0], '/')+1:]
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grid:", err)
		return "", 1
	}
	defer ln.Close()
	switch {
	case len(announce) > 0:
		return announce[0], 0
	case port == "0":
		return "/ip4/127.0.0.1/tcp/4001", 0
	}
	return listen[0], 0
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

func TestSetSessions(t *testing.T) {
	repo := t.TempDir()
	path := filepath.Join(repo, "config")
	if err := os.WriteFile(path, []byte(`{"Identity": {"PeerID": "x"}, "Sessions": {"Max": 7}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetSessions(repo, map[string]any{"Timeout": "6s"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"Timeout": "6s"`, `"Max": 7`, `"PeerID": "x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %s:\n%s", want, b)
		}
	}
	if err := SetSessions(repo, map[string]any{"Timeout": "1m0s", "Max": 9}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	for _, want := range []string{`"Timeout": "1m0s"`, `"Max": 9`, `"PeerID": "x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %s:\n%s", want, b)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", st.Mode())
	}
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetSessions(repo, map[string]any{"Max": 1}); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Errorf("bad config: %v", err)
	}
	if err := SetSessions(filepath.Join(repo, "nothere"), map[string]any{"Max": 1}); err == nil {
		t.Error("a missing repo was edited")
	}
}
