package discovery

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPublishSeenByAll(t *testing.T) {
	s := newSwarm(t, 5)
	m := testManifest("convnet", "", s.holders(4), 0)
	if err := s.nodes[1].Publish(s.ctx, m, s.key(1)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if m.Owner != s.hosts[1].ID() || m.Version == 0 {
		t.Fatalf("publish did not fill owner/version: %+v", m)
	}
	eventually(t, 10*time.Second, "all 5 nodes list convnet", func() bool {
		for _, d := range s.nodes {
			if !listed(d, "convnet") {
				return false
			}
		}
		return true
	})
	for i, d := range s.nodes {
		got, err := d.Lookup(s.ctx, "convnet")
		if err != nil {
			t.Fatalf("node %d lookup: %v", i, err)
		}
		if got.Owner != m.Owner || got.Version != m.Version || got.PlanHash != m.PlanHash || len(got.Holders) != 4 {
			t.Fatalf("node %d: got %+v", i, got)
		}
	}
	// A newer version replaces the old one everywhere.
	m2 := m.Clone()
	m2.Version, m2.AllowRemote = m.Version+1, false
	if err := s.nodes[1].Publish(s.ctx, m2, s.key(1)); err != nil {
		t.Fatalf("publish v2: %v", err)
	}
	eventually(t, 10*time.Second, "all nodes at v2", func() bool {
		for _, d := range s.nodes {
			if version(d, "convnet") != m2.Version {
				return false
			}
		}
		return true
	})
	if got := s.nodes[4].Models(); len(got) != 1 || got[0].AllowRemote {
		t.Fatalf("models after v2: %+v", got)
	}
}

func TestLateJoinerCatchUp(t *testing.T) {
	s := newSwarm(t, 3)
	for i, id := range []string{"a", "b"} {
		if err := s.nodes[i].Publish(s.ctx, testManifest(id, "", s.holders(2), 0), s.key(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.nodes[0].Unpublish(s.ctx, "a", s.key(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b everywhere, a gone", func() bool {
		for _, d := range s.nodes {
			if !listed(d, "b") || listed(d, "a") {
				return false
			}
		}
		return true
	})
	start := time.Now()
	late := s.add()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := late.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// WaitReady pulled the catalog: the late joiner lists b at once and
	// knows a's tombstone (so a replay of a's old manifest is refused).
	got := late.Models()
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("late joiner models: %+v", got)
	}
	if e := late.reg.get("a"); e == nil || !e.m.Deleted {
		t.Fatalf("late joiner does not know a's tombstone: %+v", e)
	}
	t.Logf("late joiner listed the catalog %s after start", time.Since(start))

	// A client-mode joiner, too.
	cl := s.add(clientMode)
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if !listed(cl, "b") {
		t.Fatal("client joiner does not list b")
	}
}

func TestLookupFallsBackToDHT(t *testing.T) {
	s := newSwarm(t, 4)
	m := testManifest("dhtonly", "", s.holders(2), 0)
	if err := s.nodes[0].Publish(s.ctx, m, s.key(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node 3 has it", func() bool { return listed(s.nodes[3], "dhtonly") })
	// Forget it locally: Lookup must find it in the DHT and re-learn it.
	d := s.nodes[3]
	d.reg.mu.Lock()
	delete(d.reg.entries, "dhtonly")
	d.reg.mu.Unlock()
	before := counterValue(d.metrics.Accepted.WithLabelValues(sourceDHT))
	got, err := d.Lookup(s.ctx, "dhtonly")
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if got.Version != m.Version || got.Owner != m.Owner {
		t.Fatalf("got %+v", got)
	}
	if counterValue(d.metrics.Accepted.WithLabelValues(sourceDHT)) != before+1 || !listed(d, "dhtonly") {
		t.Fatal("dht result not added to the registry")
	}
	if _, err := d.Lookup(s.ctx, "nosuchmodel"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown model: %v", err)
	}
	if _, err := d.Lookup(s.ctx, "bad/id"); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestForgedAndNonOwnerRefused(t *testing.T) {
	s := newSwarm(t, 3)
	a := s.attacker()
	victim := s.hosts[1].ID()
	attackerKey := a.h.Peerstore().PrivKey(a.h.ID())

	// A manifest claiming the victim as owner, signed by the attacker.
	notOwner := sealRaw(t, testManifest("stolen", victim, s.holders(2), 1), attackerKey)
	// A valid manifest with its signature flipped.
	forged := mustSeal(t, testManifest("forged", a.h.ID(), s.holders(2), 1), attackerKey)
	forged[len(forged)-1] ^= 1

	a.send(t, notOwner)
	a.send(t, forged)
	eventually(t, 10*time.Second, "refusals counted", func() bool {
		for _, d := range s.nodes {
			if refusedCount(d, sourcePubsub, "signer_not_owner") < 1 || refusedCount(d, sourcePubsub, "bad_envelope") < 1 {
				return false
			}
		}
		return true
	})
	for i, d := range s.nodes {
		if n := len(d.Models()); n != 0 {
			t.Fatalf("node %d lists %d models", i, n)
		}
	}
	// A node's refusals are in its log, with the reason and the sender.
	var logs logBuffer
	watcher := s.add(withLog(&logs))
	wh := s.hosts[len(s.hosts)-1]
	if err := a.h.Connect(s.ctx, peer.AddrInfo{ID: wh.ID(), Addrs: wh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "watcher subscribed", func() bool {
		return slices.Contains(a.topic.ListPeers(), wh.ID()) && watcher.meshSize() > 0
	})
	a.send(t, forged)
	eventually(t, 10*time.Second, "refusal logged", func() bool {
		l := logs.String()
		return strings.Contains(l, `msg="manifest refused"`) && strings.Contains(l, "reason=bad_envelope") &&
			strings.Contains(l, a.h.ID().String())
	})
	// The same bytes pushed over the sync protocol are refused too.
	err := pushFrom(t, s, a, notOwner)
	if err == nil || !strings.Contains(err.Error(), "signer is not its owner") {
		t.Fatalf("push non-owner: %v", err)
	}
}

// pushFrom pushes env from a's host to node 0 over the sync protocol.
func pushFrom(t *testing.T, s *swarm, a *attacker, env []byte) error {
	t.Helper()
	// Borrow node 0's push client logic through a throwaway Discovery-less
	// stream: the code path is the same as Discovery.push.
	tmp := &Discovery{h: a.h}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	return tmp.push(ctx, s.hosts[0].ID(), env, nil)
}

func TestReplayRefused(t *testing.T) {
	s := newSwarm(t, 3)
	owner := s.hosts[0].ID()
	v1 := testManifest("m", owner, s.holders(2), 1)
	v1env := mustSeal(t, v1, s.key(0))
	if err := s.nodes[0].Publish(s.ctx, v1, s.key(0)); err != nil {
		t.Fatal(err)
	}
	v2 := testManifest("m", owner, s.holders(2), 2)
	v2.AllowRemote = false
	if err := s.nodes[0].Publish(s.ctx, v2, s.key(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "v2 everywhere", func() bool {
		for _, d := range s.nodes {
			if version(d, "m") != 2 {
				return false
			}
		}
		return true
	})
	a := s.attacker()
	a.send(t, v1env) // a genuine, owner-signed, older manifest
	eventually(t, 10*time.Second, "replay refused", func() bool {
		for _, d := range s.nodes[1:] {
			if refusedCount(d, sourcePubsub, "stale_version") < 1 {
				return false
			}
		}
		return true
	})
	for i, d := range s.nodes {
		if version(d, "m") != 2 {
			t.Fatalf("node %d went back to version %d", i, version(d, "m"))
		}
	}
	// Locally: an explicit version that is not newer is refused.
	if err := s.nodes[0].Publish(s.ctx, testManifest("m", owner, s.holders(2), 2), s.key(0)); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("local republish of version 2 with other content: %v", err)
	}
	if err := s.nodes[0].Publish(s.ctx, testManifest("m", owner, s.holders(2), 1), s.key(0)); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("local publish of version 1: %v", err)
	}
}

func TestUnpublishByNonOwnerRefused(t *testing.T) {
	s := newSwarm(t, 3)
	owner := s.hosts[0].ID()
	if err := s.nodes[0].Publish(s.ctx, testManifest("m", "", s.holders(2), 0), s.key(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "m everywhere", func() bool {
		return listed(s.nodes[1], "m") && listed(s.nodes[2], "m")
	})
	// Node 1 tries to unpublish node 0's model with its own key.
	err := s.nodes[1].Unpublish(s.ctx, "m", s.key(1))
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("unpublish by non-owner: %v", err)
	}
	if got := counterValue(s.nodes[1].metrics.UnpublishRefused); got != 1 {
		t.Fatalf("unpublish_refused_total = %v, want 1", got)
	}
	// Node 1 also cannot take the name over by publishing.
	if err := s.nodes[1].Publish(s.ctx, testManifest("m", "", s.holders(2), 0), s.key(1)); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("publish over another's name: %v", err)
	}
	// A tombstone signed by someone else, sent on the wire, is refused.
	a := s.attacker()
	ak := a.h.Peerstore().PrivKey(a.h.ID())
	tomb := &Manifest{ID: "m", Owner: a.h.ID(), Version: 1 << 62, Time: time.Now(), Deleted: true}
	a.send(t, mustSeal(t, tomb, ak))
	eventually(t, 10*time.Second, "remote tombstone refused", func() bool {
		for _, d := range s.nodes {
			if refusedCount(d, sourcePubsub, "name_taken") < 1 || counterValue(d.metrics.UnpublishRefused) < 1 {
				return false
			}
		}
		return true
	})
	for i, d := range s.nodes {
		if !listed(d, "m") {
			t.Fatalf("node %d lost m", i)
		}
	}
	// The owner can unpublish; then the model is gone everywhere.
	if err := s.nodes[0].Unpublish(s.ctx, "m", s.key(0)); err != nil {
		t.Fatalf("unpublish by owner: %v", err)
	}
	eventually(t, 10*time.Second, "m gone", func() bool {
		for _, d := range s.nodes {
			if listed(d, "m") {
				return false
			}
		}
		return true
	})
	if _, err := s.nodes[2].Lookup(s.ctx, "m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after unpublish: %v", err)
	}
	if tomb, ok := s.nodes[2].Latest("m"); !ok || !tomb.Deleted || tomb.Owner != owner {
		t.Fatalf("latest after unpublish: %+v, %v", tomb, ok)
	}
	if _, ok := s.nodes[2].Latest("never"); ok {
		t.Fatal("latest of an unknown id")
	}
	if err := s.nodes[0].Unpublish(s.ctx, "m", s.key(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second unpublish: %v", err)
	}
	// The name stays with its owner, who may publish it again.
	if err := s.nodes[0].Publish(s.ctx, testManifest("m", owner, s.holders(2), 0), s.key(0)); err != nil {
		t.Fatalf("republish by owner: %v", err)
	}
	eventually(t, 10*time.Second, "m back", func() bool { return listed(s.nodes[2], "m") })
}

func TestOversizedRefused(t *testing.T) {
	s := newSwarm(t, 2)
	owner := s.hosts[0].ID()
	big := testManifest("big", owner, s.holders(2), 0)
	big.Plan = make([]byte, MaxManifestSize)
	big.PlanHash = planHash(big.Plan)
	if err := s.nodes[0].Publish(s.ctx, big, s.key(0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("publish oversized: %v", err)
	}
	if got := refusedCount(s.nodes[0], sourceLocal, "too_large"); got != 1 {
		t.Fatalf("local too_large count %v", got)
	}
	// Forged on the wire (a valid signature, just too big).
	a := s.attacker()
	ak := a.h.Peerstore().PrivKey(a.h.ID())
	big = testManifest("big", a.h.ID(), s.holders(2), 1)
	big.Plan = make([]byte, MaxManifestSize-200)
	big.PlanHash = planHash(big.Plan)
	env := sealRaw(t, big, ak)
	if len(env) <= MaxManifestSize {
		t.Fatalf("test envelope is only %d bytes", len(env))
	}
	a.send(t, env)
	eventually(t, 10*time.Second, "oversize refused", func() bool {
		return refusedCount(s.nodes[0], sourcePubsub, "too_large") >= 1 && refusedCount(s.nodes[1], sourcePubsub, "too_large") >= 1
	})
	if listed(s.nodes[1], "big") {
		t.Fatal("oversized manifest listed")
	}
}

func TestPersistedRegistry(t *testing.T) {
	s := newSwarm(t, 0)
	ds := memDatastore()
	d := s.add(withDatastore(ds))
	if err := d.Publish(s.ctx, testManifest("kept", "", peerIDs(t, 2), 0), s.key(0)); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish(s.ctx, testManifest("gone", "", peerIDs(t, 2), 0), s.key(0)); err != nil {
		t.Fatal(err)
	}
	if err := d.Unpublish(s.ctx, "gone", s.key(0)); err != nil {
		t.Fatal(err)
	}
	// A corrupted record in the store is refused at load, not fatal.
	if err := ds.Put(s.ctx, registryPrefix.ChildString("junk"), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	// A restarted node (a new host, the same store, no peers) lists at once.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := s.add(withDatastore(ds), func(c *Config) { c.Bootstrap = nil })
	got := d2.Models()
	if len(got) != 1 || got[0].ID != "kept" {
		t.Fatalf("after restart: %+v", got)
	}
	if e := d2.reg.get("gone"); e == nil || !e.m.Deleted {
		t.Fatal("tombstone not persisted")
	}
	if refusedCount(d2, sourceStore, "bad_envelope") != 1 {
		t.Fatal("corrupt stored record not counted")
	}
	// The DHT's records live in the same store, under their own prefix.
	res, err := ds.Query(s.ctx, query.Query{Prefix: "/grid/discovery/dht", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil || len(entries) < 2 {
		t.Fatalf("dht records in the store: %d, %v", len(entries), err)
	}
}

func TestClientPublishReachesDaemons(t *testing.T) {
	s := newSwarm(t, 3)
	cl := s.add(clientMode)
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	clientKey := s.key(len(s.hosts) - 1)
	if err := cl.Publish(ctx, testManifest("fromcli", "", s.holders(2), 0), clientKey); err != nil {
		t.Fatalf("client publish: %v", err)
	}
	// The one-shot client leaves right away.
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.h.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "daemons list fromcli", func() bool {
		for _, d := range s.nodes[:3] {
			if !listed(d, "fromcli") {
				return false
			}
		}
		return true
	})
}

func TestRoles(t *testing.T) {
	s := newSwarm(t, 4)
	for _, i := range []int{1, 2} {
		if err := s.nodes[i].Advertise(s.ctx, RoleDealer); err != nil {
			t.Fatalf("advertise: %v", err)
		}
	}
	if err := s.nodes[3].Advertise(s.ctx, RoleHolder); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	got, err := s.nodes[0].FindPeers(ctx, RoleDealer, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[peer.ID]bool{s.hosts[1].ID(): true, s.hosts[2].ID(): true}
	if len(got) != 2 || !want[got[0].ID] || !want[got[1].ID] || len(got[0].Addrs) == 0 {
		t.Fatalf("dealers: %+v", got)
	}
	// Self is excluded, max is honoured.
	got, err = s.nodes[1].FindPeers(ctx, RoleDealer, 0)
	if err != nil || len(got) != 1 || got[0].ID != s.hosts[2].ID() {
		t.Fatalf("dealers seen by a dealer: %+v, %v", got, err)
	}
	got, err = s.nodes[0].FindPeers(ctx, RoleDealer, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("max 1: %+v, %v", got, err)
	}
	if got, err := s.nodes[0].FindPeers(ctx, RoleHost, 5); err != nil || len(got) != 0 {
		t.Fatalf("hosts: %+v, %v", got, err)
	}
	if err := s.nodes[0].Advertise(ctx, "king"); err == nil {
		t.Fatal("unknown role accepted")
	}
	if _, err := s.nodes[0].FindPeers(ctx, "", 1); err == nil {
		t.Fatal("empty role accepted")
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, m2 := NewMetrics(reg), NewMetrics(reg) // two nodes in one process share them
	m1.Refused.WithLabelValues(sourcePubsub, "bad_envelope").Inc()
	m2.Refused.WithLabelValues(sourcePubsub, "bad_envelope").Inc()
	m2.UnpublishRefused.Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, mf := range mfs {
		names[mf.GetName()] = len(mf.GetMetric())
	}
	if names["grid_discovery_manifests_refused_total"] != 1 || names["grid_discovery_unpublish_refused_total"] != 1 {
		t.Fatalf("gathered %v", names)
	}
	if got := counterValue(m1.Refused.WithLabelValues(sourcePubsub, "bad_envelope")); got != 2 {
		t.Fatalf("shared counter = %v", got)
	}
}

func TestModelsEmptyNotNil(t *testing.T) {
	s := newSwarm(t, 1)
	if m := s.nodes[0].Models(); m == nil || len(m) != 0 {
		t.Fatalf("models of an empty registry: %#v", m)
	}
}

func TestNewRequiresHost(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("nil host accepted")
	}
}

func TestWaitReadyUnreachableBootstrap(t *testing.T) {
	s := newSwarm(t, 1)
	_, ghost := newKey(t)
	d := s.add(func(c *Config) { c.Bootstrap = []peer.AddrInfo{{ID: ghost}} })
	ctx, cancel := context.WithTimeout(s.ctx, 300*time.Millisecond)
	defer cancel()
	err := d.WaitReady(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), ghost.String()) {
		t.Fatalf("want a deadline error naming the bootstrap peer, got %v", err)
	}
}

func TestAntiEntropyRepairsLostGossip(t *testing.T) {
	s := newSwarm(t, 2)
	d := s.add(func(c *Config) { c.SyncInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Node 0 learns a manifest that is never gossiped (as if the message
	// had been lost): only the periodic pull can bring it to d.
	m := testManifest("quiet", s.hosts[0].ID(), s.holders(2), 1)
	env := mustSeal(t, m, s.key(0))
	if v, err := s.nodes[0].ingest(s.ctx, sourceLocal, "", env); v != verdictAccept || err != nil {
		t.Fatalf("ingest: %v %v", v, err)
	}
	eventually(t, 10*time.Second, "anti-entropy pull", func() bool { return listed(d, "quiet") })
	if listed(s.nodes[1], "quiet") {
		t.Fatal("node 1 (no periodic sync) got it: the test does not isolate anti-entropy")
	}
}

func TestSyncSkipsEqualCatalogs(t *testing.T) {
	s := newSwarm(t, 2)
	if err := s.nodes[0].Publish(s.ctx, testManifest("x", "", s.holders(2), 0), s.key(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "x on node 1", func() bool { return listed(s.nodes[1], "x") })
	if !bytes.Equal(s.nodes[0].reg.digest(), s.nodes[1].reg.digest()) {
		t.Fatal("equal catalogs, different digests")
	}
	n, err := s.nodes[1].pull(s.ctx, s.hosts[0].ID())
	if err != nil || n != 0 {
		t.Fatalf("pull between equal catalogs: %d entries, %v", n, err)
	}
	// Node 0 learns something node 1 lacks: the digests differ, the pull
	// brings the whole catalog.
	env := mustSeal(t, testManifest("y", s.hosts[0].ID(), s.holders(2), 1), s.key(0))
	if v, err := s.nodes[0].ingest(s.ctx, sourceLocal, "", env); v != verdictAccept || err != nil {
		t.Fatalf("ingest: %v %v", v, err)
	}
	n, err = s.nodes[1].pull(s.ctx, s.hosts[0].ID())
	if err != nil || n != 2 || !listed(s.nodes[1], "y") {
		t.Fatalf("pull after a change: %d entries, %v", n, err)
	}
}

func TestSyncServerRefusesMalformedRequests(t *testing.T) {
	s := newSwarm(t, 1)
	a := s.attacker()
	for name, req := range map[string][]byte{
		"garbage":        []byte("\x05hello"),
		"frame too big":  {0xff, 0xff, 0xff, 0x0f},
		"push, no body":  {0x02, 0x08, 0x01},
		"truncated list": {0x04, 0x08},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			st, err := a.h.NewStream(ctx, s.hosts[0].ID(), SyncProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Write(req); err != nil {
				t.Fatal(err)
			}
			_ = st.CloseWrite()
			_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 16)
			n, err := st.Read(buf)
			if err == nil || n != 0 {
				t.Fatalf("server answered %q (%v) to a malformed request", buf[:n], err)
			}
		})
	}
	// The server still serves well-formed requests.
	tmp := &Discovery{h: a.h, reg: newRegistry(nil), log: testLogger(), metrics: NewMetrics(nil), ctx: s.ctx}
	if _, err := tmp.pull(s.ctx, s.hosts[0].ID()); err != nil {
		t.Fatalf("well-formed list after malformed ones: %v", err)
	}
}

// TestWatch: a subscriber is signalled when another node's publish and
// unpublish reach its registry, signals are coalesced, and stop ends them.
func TestWatch(t *testing.T) {
	s := newSwarm(t, 2)
	changed, stop := s.nodes[0].Watch()
	other, stopOther := s.nodes[0].Watch()
	defer stopOther()
	wait := func(c <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("no signal after %s", what)
		}
	}
	m := testManifest("watched", "", s.holders(2), 0)
	if err := s.nodes[1].Publish(s.ctx, m, s.key(1)); err != nil {
		t.Fatal(err)
	}
	wait(changed, "a publish")
	if got, ok := s.nodes[0].Latest("watched"); !ok || got.Deleted || got.Version != m.Version {
		t.Fatalf("Latest after the signal = %+v, %v", got, ok)
	}
	if err := s.nodes[1].Unpublish(s.ctx, "watched", s.key(1)); err != nil {
		t.Fatal(err)
	}
	wait(changed, "an unpublish")
	got, ok := s.nodes[0].Latest("watched")
	if !ok || !got.Deleted {
		t.Fatalf("Latest after the unpublish signal = %+v, %v", got, ok)
	}
	// The second subscriber read nothing yet: its two changes are one signal.
	wait(other, "two changes")
	select {
	case <-other:
		t.Fatal("two changes gave two pending signals")
	default:
	}
	stop()
	m2 := testManifest("after-stop", "", s.holders(2), 0)
	if err := s.nodes[1].Publish(s.ctx, m2, s.key(1)); err != nil {
		t.Fatal(err)
	}
	wait(other, "a publish after the first subscriber stopped")
	select {
	case <-changed:
		t.Fatal("signal after stop")
	default:
	}
}
