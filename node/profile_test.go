package node

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestRelayRoleOnLoopback starts a loopback node with the relay role: it
// serves circuit relay v2 (the hop protocol). The NAT tools themselves
// (port mapping probes the LAN) are only checked as options: no test
// starts a node that could listen or send beyond loopback.
func TestRelayRoleOnLoopback(t *testing.T) {
	repo := t.TempDir()
	if _, err := Init(repo, nil); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultLocalConfig(repo)
	cfg.Roles = append(cfg.Roles, RoleRelay)
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// go-libp2p's relay manager starts the service on the (forced) public
	// reachability event, asynchronously: wait for it, bounded.
	hop := func() bool {
		return slices.ContainsFunc(n.Host().Mux().Protocols(), func(p protocol.ID) bool { return strings.HasSuffix(string(p), "/relay/0.2.0/hop") })
	}
	for deadline := time.Now().Add(5 * time.Second); !hop() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !hop() {
		t.Errorf("relay role: no hop protocol among %v", n.Host().Mux().Protocols())
	}
	for _, a := range n.Host().Network().ListenAddresses() {
		if !strings.HasPrefix(a.String(), "/ip4/127.0.0.1/") && a.String() != "/p2p-circuit" {
			t.Errorf("listens on %s, beyond loopback", a)
		}
	}

	var hp atomic.Pointer[host.Host]
	if got := len(natOptions(Config{}, &hp)); got != 1 {
		t.Errorf("no NAT, no relay: %d options, want 1 (the relay transport, to dial relay addresses)", got)
	}
	if got := len(natOptions(Config{NAT: true}, &hp)); got != 6 {
		t.Errorf("NAT: %d options, want 6 (relay client, AutoNAT v2, AutoNAT v1 service, hole punching, port mapping, autorelay)", got)
	}
	if ch := connectedPeers(&hp)(context.Background(), 3); len(ch) != 0 {
		t.Errorf("peer source before the host exists: %d peers", len(ch))
	}

	for _, tc := range []struct{ profile, listen string }{{ProfileTest, "/ip4/127.0.0.1/tcp/0"}, {ProfileDefault, "/ip4/0.0.0.0/tcp/4301"}} {
		p, err := profile(tc.profile)
		if err != nil || p.listen[0] != tc.listen || p.nat != (tc.profile == ProfileDefault) {
			t.Errorf("profile %s: %+v, %v", tc.profile, p, err)
		}
	}
	if _, err := profile("prod"); err == nil {
		t.Error("profile prod accepted")
	}
}
