package discovery

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery/pb"
)

// newFixtureRegistry is a memory registry holding fx's manifest.
func newFixtureRegistry(t *testing.T, fx *repairFixture) *registry {
	t.Helper()
	reg := newRegistry(memDatastore())
	env := mustSeal(t, fx.m, fx.ownerSK)
	m, err := Open(env)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := reg.apply(context.Background(), m, env); v != verdictAccept {
		t.Fatalf("apply manifest: %v", err)
	}
	return reg
}

func mustMarshalRepair(t testing.TB, r *Repair) []byte {
	t.Helper()
	b, err := MarshalRepair(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegistryRepairRules(t *testing.T) {
	ctx := context.Background()
	fx := newRepairFixture(t)
	reg := newFixtureRegistry(t, fx)
	cand := fx.candidates
	apply := func(r *Repair) (verdict, error) {
		v, _, err := reg.applyRepair(ctx, r, mustMarshalRepair(t, r))
		return v, err
	}
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: cand[0]}))
	if v, err := apply(r1); v != verdictAccept {
		t.Fatalf("first repair: %v", err)
	}
	m1 := reg.get(fx.m.ID).eff()
	if v, err := apply(r1); v != verdictDuplicate {
		t.Fatalf("same record again: verdict %d, %v", v, err)
	}
	other := fx.sign(t, draft(fx.m, map[int]peer.ID{1: cand[1]}))
	forged := other.Clone()
	forged.Sigs[forged.Holders[2]][0] ^= 1
	gap := fx.sign(t, draft(m1, map[int]peer.ID{1: cand[1]}))
	gap.Seq = 3
	fx.sign(t, gap)
	newer := fx.sign(t, draft(m1, map[int]peer.ID{1: cand[1]}))
	newer.Base++
	fx.sign(t, newer)
	unknown := fx.sign(t, draft(fx.m, map[int]peer.ID{1: cand[1]}))
	unknown.Model = "unknown"
	fx.sign(t, unknown)
	for name, c := range map[string]struct {
		r      *Repair
		reason string
	}{
		"conflict":   {other, "conflict"},
		"forged seq": {forged, "bad_repair"},
		"gap":        {gap, "behind"},
		"newer base": {newer, "behind"},
		"unknown":    {unknown, "behind"},
		"wrong owner": {func() *Repair {
			r := draft(m1, map[int]peer.ID{1: cand[1]})
			r.Owner = fx.outsider
			return fx.sign(t, r)
		}(), "bad_repair"},
	} {
		if v, err := apply(c.r); v != verdictRefuse || reason(err) != c.reason {
			t.Errorf("%s: verdict %d, err %v (reason %s), want %s", name, v, err, reason(err), c.reason)
		}
	}
	// The chain is bounded.
	prev := m1
	for i := 1; i < maxRepairChain; i++ {
		r := fx.sign(t, draft(prev, map[int]peer.ID{0: cand[i%2]}))
		v, amended, err := reg.applyRepair(ctx, r, mustMarshalRepair(t, r))
		if v != verdictAccept {
			t.Fatalf("repair %d: %v", i+1, err)
		}
		prev = amended
	}
	over := fx.sign(t, draft(prev, map[int]peer.ID{0: cand[maxRepairChain%2]}))
	if v, err := apply(over); v != verdictRefuse || !errors.Is(err, errChainFull) {
		t.Fatalf("repair %d: verdict %d, %v", maxRepairChain+1, v, err)
	}
	// The owner's next version drops the chain: a repair of the old base
	// is stale.
	next := prev.Clone()
	next.Version = prev.Shares() + 1
	env := mustSeal(t, next, fx.ownerSK)
	nm, err := Open(env)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := reg.apply(ctx, nm, env); v != verdictAccept {
		t.Fatal(err)
	}
	if e := reg.get(fx.m.ID); len(e.chain) != 0 || e.eff().RepairSeq != 0 || !slices.Equal(e.eff().Holders, prev.Holders) {
		t.Fatalf("after the owner's new version: chain %d, holders %v", len(e.chain), e.eff().Holders)
	}
	if v, err := apply(over); v != verdictRefuse || !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("repair of a superseded base: verdict %d, %v", v, err)
	}
}

// repairedEverywhere waits until every node's effective manifest of id
// has seq and holder h at party 0.
func repairedEverywhere(t *testing.T, nodes []*Discovery, id string, seq uint64, h peer.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "repair everywhere", func() bool {
		for _, d := range nodes {
			m, ok := d.Latest(id)
			if !ok || m.RepairSeq != seq || m.Holders[0] != h {
				return false
			}
		}
		return true
	})
}

func TestRepairSpreads(t *testing.T) {
	s := newSwarm(t, 3)
	fx := newRepairFixture(t)
	if err := s.nodes[0].Publish(s.ctx, fx.m.Clone(), fx.ownerSK); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "model everywhere", func() bool {
		return listed(s.nodes[1], fx.m.ID) && listed(s.nodes[2], fx.m.ID)
	})
	changed, stop := s.nodes[2].Watch()
	defer stop()
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	if err := s.nodes[1].PublishRepair(s.ctx, r1); err != nil {
		t.Fatalf("publish repair: %v", err)
	}
	repairedEverywhere(t, s.nodes, fx.m.ID, 1, fx.candidates[0])
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no watch signal for the repair")
	}
	got, err := s.nodes[2].Lookup(s.ctx, fx.m.ID)
	if err != nil || got.Holders[0] != fx.candidates[0] || got.Shares() != r1.SharesVersion {
		t.Fatalf("lookup after repair: %+v, %v", got, err)
	}
	if ms := s.nodes[0].Models(); len(ms) != 1 || ms[0].RepairSeq != 1 {
		t.Fatalf("models after repair: %+v", ms)
	}
	// A second, different record with seq 1 loses: the first accepted wins.
	conflict := fx.sign(t, draft(fx.m, map[int]peer.ID{1: fx.candidates[1]}))
	if err := s.nodes[2].PublishRepair(s.ctx, conflict); !errors.Is(err, errRepairConflict) {
		t.Fatalf("conflicting record: %v", err)
	}
	// A late joiner gets the chain with the catalog, and can extend it.
	late := s.add()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := late.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m1, ok := late.Latest(fx.m.ID)
	if !ok || m1.RepairSeq != 1 {
		t.Fatalf("late joiner: %+v", m1)
	}
	r2 := fx.sign(t, draft(m1, map[int]peer.ID{0: fx.candidates[1]}))
	if err := late.PublishRepair(s.ctx, r2); err != nil {
		t.Fatalf("second repair: %v", err)
	}
	repairedEverywhere(t, s.nodes, fx.m.ID, 2, fx.candidates[1])
}

func TestForgedRepairRefused(t *testing.T) {
	s := newSwarm(t, 2)
	fx := newRepairFixture(t)
	if err := s.nodes[0].Publish(s.ctx, fx.m.Clone(), fx.ownerSK); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "model everywhere", func() bool { return listed(s.nodes[1], fx.m.ID) })
	a := s.attackerOn(RepairTopic)
	forged := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	forged.Sigs[forged.Holders[3]][7] ^= 1
	a.send(t, mustMarshalRepair(t, forged))
	a.send(t, []byte("junk"))
	// Without the owner's policy, every holder's signature is not enough.
	noPolicy := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.outsider}))
	a.send(t, mustMarshalRepair(t, noPolicy))
	eventually(t, 10*time.Second, "refusals counted", func() bool {
		for _, d := range s.nodes {
			if counterValue(d.metrics.RepairsRefused.WithLabelValues(sourcePubsub, "bad_repair")) < 3 {
				return false
			}
		}
		return true
	})
	for i, d := range s.nodes {
		if m, _ := d.Latest(fx.m.ID); m.RepairSeq != 0 || !slices.Equal(m.Holders, fx.m.Holders) {
			t.Fatalf("node %d applied a forged repair: %+v", i, m)
		}
	}
}

func TestRepairChainPersisted(t *testing.T) {
	s := newSwarm(t, 0)
	ds := memDatastore()
	fx := newRepairFixture(t)
	d := s.add(withDatastore(ds))
	if err := d.Publish(s.ctx, fx.m.Clone(), fx.ownerSK); err != nil {
		t.Fatal(err)
	}
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	if err := d.PublishRepair(s.ctx, r1); err != nil {
		t.Fatal(err)
	}
	restart := func() *Discovery {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		return s.add(withDatastore(ds), func(c *Config) { c.Bootstrap = nil })
	}
	d = restart()
	m1, ok := d.Latest(fx.m.ID)
	if !ok || m1.RepairSeq != 1 || m1.Holders[0] != fx.candidates[0] {
		t.Fatalf("after restart: %+v", m1)
	}
	next := m1.Clone()
	next.Version = 0
	next.Time = time.Time{}
	if err := d.Publish(s.ctx, next, fx.ownerSK); err != nil {
		t.Fatalf("owner's next version from the repaired manifest: %v", err)
	}
	d = restart()
	m2, _ := d.Latest(fx.m.ID)
	if m2.RepairSeq != 0 || m2.Holders[0] != fx.candidates[0] || m2.Version <= fx.m.Version {
		t.Fatalf("after the owner's next version and a restart: %+v", m2)
	}
	if has, err := ds.Has(s.ctx, repairPrefix.ChildString(fx.m.ID)); err != nil || has {
		t.Fatalf("superseded chain still stored: %v, %v", has, err)
	}
	// A superseded chain left in the store (a failed delete) is refused
	// at load and deleted.
	if err := ds.Put(s.ctx, repairPrefix.ChildString(fx.m.ID), mustProto(t, &pb.SyncEntry{Repairs: [][]byte{mustMarshalRepair(t, r1)}})); err != nil {
		t.Fatal(err)
	}
	d = restart()
	if has, _ := ds.Has(s.ctx, repairPrefix.ChildString(fx.m.ID)); has || counterValue(d.metrics.RepairsRefused.WithLabelValues(sourceStore, "stale_version")) != 1 {
		t.Fatalf("stale stored chain: still stored %v", has)
	}
}

func TestLookupFetchesRepairChainFromDHT(t *testing.T) {
	s := newSwarm(t, 4)
	fx := newRepairFixture(t)
	if err := s.nodes[0].Publish(s.ctx, fx.m.Clone(), fx.ownerSK); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "model on node 3", func() bool { return listed(s.nodes[3], fx.m.ID) })
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	if err := s.nodes[0].PublishRepair(s.ctx, r1); err != nil {
		t.Fatal(err)
	}
	repairedEverywhere(t, s.nodes, fx.m.ID, 1, fx.candidates[0])
	d := s.nodes[3]
	d.reg.mu.Lock()
	delete(d.reg.entries, fx.m.ID)
	d.reg.mu.Unlock()
	got, err := d.Lookup(s.ctx, fx.m.ID)
	if err != nil || got.RepairSeq != 1 || got.Holders[0] != fx.candidates[0] {
		t.Fatalf("lookup through the dht: %+v, %v", got, err)
	}
}

func TestChainValidator(t *testing.T) {
	fx := newRepairFixture(t)
	d := &Discovery{reg: newRegistry(nil), metrics: NewMetrics(nil), log: testLogger()}
	v := chainValidator{d}
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	m1, err := fx.m.Amend(r1)
	if err != nil {
		t.Fatal(err)
	}
	r2 := fx.sign(t, draft(m1, map[int]peer.ID{1: fx.candidates[1]}))
	forged := r2.Clone()
	forged.Sigs[forged.Holders[0]][3] ^= 1
	unlinked := fx.sign(t, draft(fx.m, map[int]peer.ID{1: fx.candidates[1]}))
	unlinked.Seq = 2
	fx.sign(t, unlinked)
	chain := func(rs ...*Repair) []byte {
		raws := make([][]byte, len(rs))
		for i, r := range rs {
			raws[i] = mustMarshalRepair(t, r)
		}
		return mustProto(t, &pb.SyncEntry{Repairs: raws})
	}
	key := DHTRepairKey(fx.m.ID)
	one, two := chain(r1), chain(r1, r2)
	for name, c := range map[string]struct {
		key   string
		value []byte
		ok    bool
	}{
		"one":            {key, one, true},
		"two":            {key, two, true},
		"forged":         {key, chain(r1, forged), false},
		"unlinked":       {key, chain(r1, unlinked), false},
		"not from seq 1": {key, chain(r2), false},
		"wrong key":      {DHTRepairKey("other"), one, false},
		"empty":          {key, chain(), false},
		"junk":           {key, []byte("junk"), false},
	} {
		if err := v.Validate(c.key, c.value); (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok %v", name, err, c.ok)
		}
	}
	if i, err := v.Select(key, [][]byte{one, []byte("junk"), two}); err != nil || i != 2 {
		t.Fatalf("select: %d, %v; want the longer chain", i, err)
	}
	// Once the node holds the owner's manifest, the chain must verify
	// against it too: a manifest without a policy refuses every chain.
	noPolicy := fx.m.Clone()
	noPolicy.Repair = RepairPolicy{}
	env := mustSeal(t, noPolicy, fx.ownerSK)
	if vd, err := d.reg.apply(context.Background(), noPolicy, env); vd != verdictAccept {
		t.Fatal(err)
	}
	if err := v.Validate(key, one); !errors.Is(err, ErrBadRepair) {
		t.Fatalf("chain against a manifest without a policy: %v", err)
	}
}
