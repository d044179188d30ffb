package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runCLI runs the grid command in-process with the given environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb, getenv)
	return code, out.String(), errb.String()
}

// checkOneLine checks that stderr is exactly one "grid: ..." line holding want.
func checkOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "grid: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one \"grid: ...\" line: %q", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

// initRepo creates a repo in a temp dir and returns its path and peer ID.
func initRepo(t *testing.T, args ...string) (string, string) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	code, stdout, stderr := runCLI(t, nil, append([]string{"init", "--profile", "test", "--repo", repo, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	var out struct{ ID, Repo string }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.ID == "" || out.Repo != repo {
		t.Fatalf("init --json printed %q (%v)", stdout, err)
	}
	return repo, out.ID
}

// freeAddr returns a loopback TCP multiaddr nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)
}

func TestInit(t *testing.T) {
	repo, id := initRepo(t)
	if !strings.HasPrefix(id, "12D3KooW") {
		t.Errorf("peer ID %q is not an ed25519 libp2p ID", id)
	}
	st, err := os.Stat(filepath.Join(repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %#o, want 0600", st.Mode().Perm())
	}
	code, _, stderr := runCLI(t, nil, "init", "--repo", repo)
	if code != exitFailure {
		t.Errorf("second init: exit %d, want 1", code)
	}
	checkOneLine(t, stderr, "already exists")

	// $GRID_PATH is the repo when --repo is not given; text output.
	envRepo := filepath.Join(t.TempDir(), "env")
	code, stdout, stderr := runCLI(t, map[string]string{"GRID_PATH": envRepo}, "init")
	if code != 0 || !strings.Contains(stdout, "peer ID 12D3KooW") || !strings.Contains(stdout, envRepo) {
		t.Fatalf("init with $GRID_PATH: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestUsageAndInputErrors(t *testing.T) {
	repo, _ := initRepo(t)
	boot := "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	empty := t.TempDir()
	onnxFile := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(onnxFile, []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"unknown flag", []string{"models", "--nope"}, nil, 2, "unknown flag: --nope"},
		{"unknown command", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"missing arg", []string{"infer"}, nil, 2, "accepts 1 arg"},
		{"no input", []string{"infer", "convnet"}, nil, 2, "exactly one of --values and --input"},
		{"both inputs", []string{"infer", "convnet", "--values", "1", "--input", "x.json"}, nil, 2, "exactly one of"},
		{"bad values", []string{"infer", "convnet", "--values", "5,x"}, nil, 2, `item 2 ("x") is not a number`},
		{"nan values", []string{"infer", "convnet", "--values", "NaN"}, nil, 2, "not a finite number"},
		{"bad dealer", []string{"infer", "convnet", "--values", "5,3", "--dealer", "bob"}, nil, 2, "--dealer"},
		{"missing input file", []string{"infer", "convnet", "--input", filepath.Join(empty, "no.json")}, nil, 2, "does not exist"},
		{"no repo", []string{"infer", "convnet", "--values", "5,3", "--repo", empty}, nil, 1, `run "grid init" first`},
		{"publish no id", []string{"publish", onnxFile}, nil, 2, `required flag(s) "id" not set`},
		{"publish bad id", []string{"publish", onnxFile, "--id", "a b"}, nil, 2, `--id "a b"`},
		{"publish one holder", []string{"publish", onnxFile, "--id", "m", "--holders", "1"}, nil, 2, "at least 2 holders"},
		{"publish plain holders", []string{"publish", onnxFile, "--id", "m", "--plain", "--holders", "3"}, nil, 2, "drop --holders"},
		{"publish missing file", []string{"publish", filepath.Join(empty, "no.onnx"), "--id", "m"}, nil, 2, "does not exist"},
		{"publish bad onnx", []string{"publish", onnxFile, "--id", "m", "--repo", repo}, nil, 2, "import " + onnxFile},
		{"no bootstrap", []string{"models", "--repo", repo}, nil, 2, "no bootstrap peers"},
		{"bad bootstrap", []string{"models", "--repo", repo, "--bootstrap", "/ip4/1.2.3.4"}, nil, 2, "is not a peer multiaddr"},
		{"bad env bootstrap", []string{"models", "--repo", repo}, map[string]string{"GRID_BOOTSTRAP": "nope"}, 2, `--bootstrap "nope"`},
		{"bad timeout", []string{"models", "--repo", repo, "--bootstrap", boot, "--timeout", "-1s"}, nil, 2, "--timeout"},
		{"bad log level", []string{"daemon", "--repo", repo, "--log-level", "loud"}, nil, 2, "--log-level"},
		{"bad role", []string{"daemon", "--repo", repo, "--roles", "oracle"}, nil, 2, `"oracle" is not one of`},
		{"bad listen", []string{"daemon", "--repo", repo, "--listen", "tcp:4001"}, nil, 2, "Listen[0]"},
		{"bad profile", []string{"init", "--repo", filepath.Join(empty, "p"), "--profile", "prod"}, nil, 2, `--profile "prod" is not one of default, test`},
		{"shutdown no daemon", []string{"shutdown", "--repo", repo}, nil, 1, "no daemon running"},
		{"daemon no repo", []string{"daemon", "--repo", empty}, nil, 1, `run "grid init" first`},
		{"init bad bootstrap", []string{"init", "--repo", filepath.Join(empty, "r"), "--bootstrap", "x"}, nil, 2, "is not a peer multiaddr"},
		{"peers no daemon", []string{"peers", "--repo", repo}, nil, 1, "no daemon running"},
		{"unpublish no name", []string{"unpublish"}, nil, 2, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			checkOneLine(t, stderr, tt.want)
		})
	}
}

func TestUnreachableBootstrap(t *testing.T) {
	repo, _ := initRepo(t)
	boot := freeAddr(t) + "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	start := time.Now()
	code, stdout, stderr := runCLI(t, nil, "models", "--repo", repo, "--bootstrap", boot)
	if code != exitFailure || stdout != "" {
		t.Errorf("exit %d stdout %q, want 1 and nothing", code, stdout)
	}
	hostPort := strings.TrimPrefix(strings.Replace(strings.Split(boot, "/p2p/")[0], "/tcp/", ":", 1), "/ip4/")
	want := "grid: bootstrap peer " + boot + " refused the connection (nothing listens at " + hostPort +
		"): is its daemon running? (or pass another with --bootstrap or $GRID_BOOTSTRAP)\n"
	if stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refused bootstrap took %v to report, want at once", d)
	}
	// Two refusing peers: both named.
	boot2 := freeAddr(t) + "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	code, _, stderr = runCLI(t, nil, "infer", "convnet", "--values", "5,3", "--repo", repo, "--bootstrap", boot+","+boot2)
	if code != exitFailure || !strings.HasPrefix(stderr, "grid: every bootstrap peer refused the connection (nothing listens at "+hostPort+", 127.0.0.1:") {
		t.Errorf("two refused bootstrap peers: exit %d, stderr %q", code, stderr)
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"infer", "--help"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("grid %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}
