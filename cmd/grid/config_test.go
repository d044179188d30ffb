package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitProfiles checks what grid init writes: the default profile (a
// reachable node at grid's port with the NAT tools; no test starts a
// daemon from it) and --profile test (loopback, free ports).
func TestInitProfiles(t *testing.T) {
	type fileConf struct {
		Addresses struct {
			Listen []string
			API    string
		}
		Swarm struct{ NAT bool }
	}
	read := func(repo string) fileConf {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repo, "config"))
		if err != nil {
			t.Fatal(err)
		}
		var fc fileConf
		if err := json.Unmarshal(b, &fc); err != nil {
			t.Fatal(err)
		}
		return fc
	}
	def := filepath.Join(t.TempDir(), "def")
	if code, _, stderr := runCLI(t, nil, "init", "--repo", def); code != 0 {
		t.Fatalf("grid init: exit %d, %q", code, stderr)
	}
	fc := read(def)
	want := []string{"/ip4/0.0.0.0/tcp/4301", "/ip6/::/tcp/4301", "/ip4/0.0.0.0/udp/4301/quic-v1", "/ip6/::/udp/4301/quic-v1", "/ip4/0.0.0.0/tcp/4302/ws"}
	if strings.Join(fc.Addresses.Listen, " ") != strings.Join(want, " ") || fc.Addresses.API != "127.0.0.1:5301" || !fc.Swarm.NAT {
		t.Errorf("default profile wrote %+v, want listen %v, API 127.0.0.1:5301, NAT on", fc, want)
	}
	test, _ := initRepo(t)
	fc = read(test)
	if strings.Join(fc.Addresses.Listen, " ") != "/ip4/127.0.0.1/tcp/0 /ip4/127.0.0.1/tcp/0/ws" || fc.Addresses.API != "127.0.0.1:0" || fc.Swarm.NAT {
		t.Errorf("test profile wrote %+v, want loopback on free ports, no NAT", fc)
	}
}

// TestConfigCommand checks grid config [KEY [VALUE]] and its refusals.
func TestConfigCommand(t *testing.T) {
	repo, _ := initRepo(t)
	grid := func(args ...string) (int, string, string) {
		return runCLI(t, nil, append(args, "--repo", repo)...)
	}
	code, all, _ := grid("config")
	if code != 0 || !strings.Contains(all, `"PrivKey": "(hidden)"`) || !strings.Contains(all, `"Listen": [`) {
		t.Errorf("grid config: exit %d, %q", code, all)
	}
	if code, out, _ := grid("config", "Addresses.API"); code != 0 || out != "127.0.0.1:0\n" {
		t.Errorf("grid config Addresses.API: exit %d, %q", code, out)
	}
	if code, out, errOut := grid("config", "Addresses.API", "127.0.0.1:5999"); code != 0 || out != "" || errOut != "" {
		t.Errorf("set Addresses.API: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := grid("config", "Addresses.API"); code != 0 || out != "127.0.0.1:5999\n" {
		t.Errorf("Addresses.API after set: exit %d, %q", code, out)
	}
	if code, _, _ := grid("config", "Swarm.NAT", "true"); code != 0 {
		t.Errorf("set Swarm.NAT: exit %d", code)
	}
	if code, out, _ := grid("config", "Swarm.NAT"); code != 0 || out != "true\n" {
		t.Errorf("Swarm.NAT after set: exit %d, %q", code, out)
	}
	if st, err := os.Stat(filepath.Join(repo, "config")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config mode after an edit: %v %v", st.Mode(), err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"config", "Roles", `["oracle"]`}, 2, `grid: the edited config is not valid, left unchanged: config: Roles[0] "oracle" is not one of [holder dealer host relay]`},
		{[]string{"config", "Addresses.Nope", "1"}, 2, `grid: config key "Addresses.Nope" does not exist (see "grid config")`},
		{[]string{"config", "Identity.PeerID", "x"}, 2, `grid: config key "Identity.PeerID" cannot be set: the identity is made by grid init`},
		{[]string{"config", "Identity.PrivKey"}, 2, `grid: config key "Identity.PrivKey" is the private key: it is not printed`},
	} {
		code, out, errOut := grid(tc.args...)
		if code != tc.code || out != "" || errOut != tc.want+"\n" {
			t.Errorf("grid %v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if code, out, _ := grid("config", "Addresses.API"); code != 0 || out != "127.0.0.1:5999\n" {
		t.Errorf("a refused edit changed the config: %d %q", code, out)
	}
}

// TestBootstrapCommand checks grid bootstrap list|add|rm.
func TestBootstrapCommand(t *testing.T) {
	a := "/ip4/127.0.0.1/tcp/4301/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	b := "/ip4/127.0.0.1/tcp/4302/p2p/12D3KooWQ1UTdUDsF4NGHHejrGhjA6fdQqF9TR1aLkb2kj3P9mLZ"
	repo, _ := initRepo(t, "--bootstrap", a)
	grid := func(args ...string) (int, string, string) {
		return runCLI(t, nil, append(args, "--repo", repo)...)
	}
	steps := []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"bootstrap", "list"}, 0, a + "\n", ""},
		{[]string{"bootstrap", "add", b, a}, 0, "added " + b + "\n", ""},
		{[]string{"bootstrap", "list"}, 0, a + "\n" + b + "\n", ""},
		{[]string{"bootstrap", "add", "/ip4/1.2.3.4"}, 2, "", `grid: bootstrap address "/ip4/1.2.3.4" is not a peer multiaddr like /ip4/127.0.0.1/tcp/4301/p2p/12D3KooW...: invalid p2p multiaddr` + "\n"},
		{[]string{"bootstrap", "rm", a}, 0, "removed " + a + "\n", ""},
		{[]string{"bootstrap", "rm", a}, 1, "", "grid: " + a + ` is not a bootstrap peer of this repo (see "grid bootstrap list")` + "\n"},
		{[]string{"bootstrap", "rm"}, 2, "", "grid: give the addresses to remove, or --all\n"},
		{[]string{"bootstrap", "rm", "--all"}, 0, "removed " + b + "\n", ""},
		{[]string{"bootstrap", "list"}, 0, "", ""},
	}
	for _, s := range steps {
		code, out, errOut := grid(s.args...)
		if code != s.code || out != s.out || errOut != s.errOut {
			t.Errorf("grid %v: exit %d, stdout %q, stderr %q; want %d, %q, %q", s.args, code, out, errOut, s.code, s.out, s.errOut)
		}
	}
}
