package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridmpc/grid/node"
)

func TestWritePublished(t *testing.T) {
	tests := []struct {
		name  string
		v     modelView
		rng   float64
		want  []string
		never []string
	}{
		{"mpc", modelView{ID: "convnet", Mode: "mpc", Holders: []string{"h1", "h2"}, InputShape: []int{2}, OutputShape: []int{1},
			AllowRemote: true, Dealers: []string{"d1"}, SafeInput: 1e6}, 100,
			[]string{`published "convnet" (mpc) over 2 holders:`, "  h1\n", "input shape [2], output shape [1]", "dealers the owner trusts (1):",
				"|x| <= 1e+06 cannot overflow", "declared input range ±100"},
			[]string{"remote inference is disabled"}},
		{"mpc no dealers", modelView{ID: "m", Mode: "mpc", Holders: []string{"h1", "h2"}, InputShape: []int{-1, 4}, OutputShape: []int{1, 2}}, 0,
			[]string{"output shape [N, 2]", "remote inference is disabled", "dealers: none named"},
			[]string{"declared input range", "cannot overflow"}},
		{"plain", modelView{ID: "p", Mode: "plain", Holders: []string{"host"}, InputShape: []int{2}, OutputShape: []int{1}, AllowRemote: true}, 0,
			[]string{`published "p" (plain) in plain mode on host:`}, []string{"dealers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			writePublished(&b, tc.v, tc.rng)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.never {
				if strings.Contains(b.String(), w) {
					t.Errorf("output has %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestModeMismatch(t *testing.T) {
	if err := modeMismatch("m", "mpc", true); err == nil || err.Error() != `model "m" is published in mpc mode, not plain: drop --plain` {
		t.Errorf("--plain for an mpc model: %v", err)
	}
	if err := modeMismatch("m", "plain", false); err == nil || err.Error() != `model "m" is published in plain mode: add --plain` {
		t.Errorf("no --plain for a plain model: %v", err)
	}
}

// TestDaemonAPICommands runs grid id and grid peers against a fake daemon
// API named by the repo's api file.
func TestDaemonAPICommands(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/id":
			_ = json.NewEncoder(w).Encode(node.IDInfo{ID: "12D3KooWSelf", Addresses: []string{"/ip4/127.0.0.1/tcp/4001"}, Roles: []string{"holder", "dealer"}})
		case "/api/v0/peers":
			_, _ = w.Write([]byte(`{"peers": null}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, node.APIFile), []byte(strings.TrimPrefix(srv.URL, "http://")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"id"}, "peer ID 12D3KooWSelf\nroles holder,dealer\naddress /ip4/127.0.0.1/tcp/4001\n"},
		{[]string{"id", "--json"}, `"id": "12D3KooWSelf",`},
		{[]string{"peers"}, "no peers\n"},
		{[]string{"peers", "--json"}, `"peers": []`},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCLI(t, nil, append(tc.args, "--repo", repo)...)
		if code != 0 || !strings.Contains(stdout, tc.want) || tc.want == "" && stdout != "" {
			t.Errorf("grid %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}
