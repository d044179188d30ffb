package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemonInProcess runs grid daemon in-process: flags override the
// config (--announce, --roles, --api), the ready protocol is printed, the
// API answers grid id, and cancelling (what SIGTERM does) shuts it down
// cleanly and removes the api file.
func TestDaemonInProcess(t *testing.T) {
	repo, id := initRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"daemon", "--repo", repo, "--listen", "/ip4/127.0.0.1/tcp/0",
			"--announce", "/ip4/127.0.0.1/tcp/9999", "--roles", "holder,dealer", "--api", "127.0.0.1:0",
			"--log-level", "error"}, strings.NewReader(""), pw, &stderr, func(string) string { return "" })
		pw.Close()
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("daemon exited before ready: %v; stderr %s", got, stderr.String())
			}
			got = append(got, l)
			if l == "daemon is ready" {
				break wait
			}
		case <-timeout:
			cancel()
			t.Fatalf("no ready line after 30s: %v", got)
		}
	}
	want := []string{"peer ID " + id, "listening on /ip4/127.0.0.1/tcp/9999/p2p/" + id}
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Errorf("line %d = %q, want %q (all: %q)", i, at(got, i), w, got)
		}
	}
	if len(got) != 5 || !strings.HasPrefix(got[2], "API server listening on 127.0.0.1:") || !strings.HasPrefix(got[3], "browser page at http://127.0.0.1:") {
		t.Errorf("ready protocol %q, want peer ID, one address, API, page, ready", got)
	}

	code, stdout, errOut := runCLI(t, nil, "id", "--repo", repo, "--json")
	var info struct {
		ID    string   `json:"id"`
		Roles []string `json:"roles"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &info) != nil || info.ID != id || strings.Join(info.Roles, ",") != "holder,dealer" {
		t.Errorf("grid id: exit %d, %q, %q", code, stdout, errOut)
	}
	code, stdout, _ = runCLI(t, nil, "peers", "--repo", repo)
	if code != 0 || stdout != "no peers\n" {
		t.Errorf("grid peers of a lone daemon: exit %d, %q, want \"no peers\"", code, stdout)
	}

	// grid shutdown stops it through the API, as SIGTERM does.
	code, stdout, errOut = runCLI(t, nil, "shutdown", "--repo", repo)
	if code != 0 || stdout != "daemon of "+repo+" stopped\n" || errOut != "" {
		t.Errorf("grid shutdown: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("daemon exit %d after shutdown; stderr %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20s")
	}
	if _, err := os.Stat(filepath.Join(repo, "api")); !os.IsNotExist(err) {
		t.Errorf("api file left after shutdown: %v", err)
	}
	// Offline, grid id answers from the repo.
	code, stdout, errOut = runCLI(t, nil, "id", "--repo", repo)
	wantID := "peer ID " + id + "\nroles holder,dealer,host\nlisten /ip4/127.0.0.1/tcp/0\nlisten /ip4/127.0.0.1/tcp/0/ws\n" +
		"offline: no daemon runs on this repo (addresses as configured)\n"
	if code != 0 || stdout != wantID || errOut != "" {
		t.Errorf("grid id offline: exit %d, stdout %q, stderr %q; want %q", code, stdout, errOut, wantID)
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// TestDemo runs grid demo --json in-process: the seed query answers 1022
// over 4 holders and a dealer.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 libp2p nodes; skipped with -short")
	}
	code, stdout, stderr := runCLI(t, nil, "demo", "--json", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	var v demoView
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("demo --json printed %q: %v", stdout, err)
	}
	if len(v.Output) != 1 || math.Abs(v.Output[0]-1022) > 1e-3 || v.Plaintext[0] != 1022 {
		t.Errorf("demo output %v (plaintext %v), want [1022]", v.Output, v.Plaintext)
	}
	if len(v.Holders) != 4 || v.Dealer == "" || v.Dealer == "self" || v.Rounds <= 0 || v.Nodes != 5 {
		t.Errorf("demo report %+v: want 4 holders, a network dealer, rounds > 0, 5 nodes", v)
	}
	for _, h := range v.Holders {
		if h == v.Dealer {
			t.Errorf("dealer %s is one of the holders", h)
		}
	}
}

func TestUploadBar(t *testing.T) {
	var small bytes.Buffer
	u := newUploadBar(&small)
	u.update(10, 1000)
	u.update(1000, 1000)
	u.finish(true)
	if small.Len() != 0 {
		t.Errorf("progress shown for a small upload: %q", small.String())
	}
	var large bytes.Buffer
	u = newUploadBar(&large)
	total := int64(4 << 20)
	for done := int64(0); done <= total; done += 1 << 20 {
		u.update(done, total)
	}
	u.finish(true)
	if !strings.Contains(large.String(), "uploading shares") {
		t.Errorf("no progress bar for a 4 MiB upload: %q", large.String())
	}
	var nilBar *uploadBar
	nilBar.finish(true) // --quiet: no bar, no panic
}
