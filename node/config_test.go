package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.RepoDir = t.TempDir()
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no repo", func(c *Config) { c.RepoDir = "" }, "RepoDir"},
		{"bad listen", func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/0", "tcp://x"} }, "Listen[1]"},
		{"bad announce", func(c *Config) { c.Announce = []string{"nope"} }, "Announce[0]"},
		{"bootstrap without p2p", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, "Bootstrap[0]"},
		{"unknown role", func(c *Config) { c.Roles = []string{"holder", "king"} }, "Roles[1]"},
		{"client with roles", func(c *Config) { c.Client = true }, "Roles"},
		{"client", func(c *Config) { c.Client = true; c.Roles = nil }, ""},
		{"bad api", func(c *Config) { c.APIAddr = "localhost" }, "APIAddr"},
		{"no timeout", func(c *Config) { c.SessionTimeout = 0 }, "SessionTimeout"},
		{"no sessions", func(c *Config) { c.MaxSessions = -1 }, "MaxSessions"},
		{"no blame grace", func(c *Config) { c.Timing.BlameGrace = 0 }, "Timing.BlameGrace"},
		{"negative sweep", func(c *Config) { c.Timing.TombstoneSweep = -time.Second }, "Timing.TombstoneSweep"},
		{"local", func(c *Config) { *c = DefaultLocalConfig(c.RepoDir) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

func TestInitLoadConfig(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	boot := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	id, err := Init(repo, []string{boot})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(repo, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %#o, want 0600", st.Mode().Perm())
	}
	if _, err := Init(repo, nil); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second Init = %v, want already exists", err)
	}
	c, err := LoadConfig(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("loaded config invalid: %v", err)
	}
	if c.RepoDir != repo || len(c.Bootstrap) != 1 || c.Bootstrap[0] != boot || len(c.Roles) != 3 {
		t.Fatalf("loaded %+v", c)
	}
	sk, err := c.loadIdentity()
	if err != nil || sk == nil {
		t.Fatalf("identity: %v", err)
	}
	if err := os.Chmod(filepath.Join(repo, ConfigFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(repo); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadConfig of a 0644 config = %v, want a permission error", err)
	}
	_ = id
	if _, err := LoadConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("LoadConfig of an empty dir = %v", err)
	}
	if _, err := Init(repo+"2", []string{"/ip4/1.2.3.4/tcp/1"}); err == nil {
		t.Fatal("Init accepted a bootstrap address without /p2p/")
	}
}

func TestParseConfigErrors(t *testing.T) {
	repo := t.TempDir()
	if _, err := Init(repo, nil); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(repo, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, in, want string }{
		{"not json", "{", "decode"},
		{"bad key", `{"Identity":{"PeerID":"x","PrivKey":"!!"}}`, "Identity.PrivKey"},
		{"wrong peer id", strings.Replace(string(good), `"PeerID": "12D3`, `"PeerID": "12D4`, 1), "Identity.PeerID"},
		{"bad timeout", strings.Replace(string(good), `"Timeout": "30s"`, `"Timeout": "soon"`, 1), "Sessions.Timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseConfig = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	repo := f.TempDir()
	if _, err := Init(repo, nil); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(repo, ConfigFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"Identity":{"PrivKey":"CAESQA=="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseConfig(b)
		if err != nil {
			return
		}
		if c.identity == nil {
			t.Fatal("parsed config without identity")
		}
		c.RepoDir = "x"
		_ = c.Validate()
	})
}

func TestRepoLock(t *testing.T) {
	repo := t.TempDir()
	if _, err := Init(repo, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Logger = quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n1, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, cfg); !errors.Is(err, ErrRepoLocked) {
		t.Fatalf("second New on a locked repo = %v, want ErrRepoLocked", err)
	}
	if err := n1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	n2, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	if n2.ID() != n1.ID() {
		t.Fatalf("identity changed across restarts: %s then %s", n1.ID(), n2.ID())
	}
	n2.Close()
}

// TestRepoDirModes checks that the repo and datastore dirs are private: Init
// tightens dirs that already existed with a looser mode, LoadConfig refuses
// a repo dir others can read, and New creates a missing datastore dir 0700.
func TestRepoDirModes(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	store := filepath.Join(repo, DatastoreDir)
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{repo, store} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Init(repo, nil); err != nil {
		t.Fatal(err)
	}
	wantMode := func(dir string, want os.FileMode) {
		t.Helper()
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s has mode %#o, want %#o", dir, st.Mode().Perm(), want)
		}
	}
	wantMode(repo, 0o700)
	wantMode(store, 0o700)

	for _, mode := range []os.FileMode{0o750, 0o705, 0o755} {
		if err := os.Chmod(repo, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(repo); err == nil || !strings.Contains(err.Error(), "chmod 700") {
			t.Fatalf("LoadConfig of a %#o repo dir = %v, want a permission error", mode, err)
		}
	}
	if err := os.Chmod(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.APIAddr, cfg.Roles = []string{"/ip4/127.0.0.1/tcp/0"}, "", nil
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	wantMode(store, 0o700)
}
