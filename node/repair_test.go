package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// eventually polls cond every 100 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// repairSwarm is a swarm of 5 holders with the seed published over 4 of
// them (tolerate 1) and a repair policy of the given grace: one spare.
type repairSwarm struct {
	*testSwarm
	m     *discovery.Manifest
	spare int
	byID  map[peer.ID]int
}

func newRepairSwarm(t *testing.T, ctx context.Context, grace time.Duration) *repairSwarm {
	t.Helper()
	s := &repairSwarm{testSwarm: newTestSwarm(t, 5), byID: map[peer.ID]int{}}
	t.Cleanup(s.close)
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "rep", p, w, PublishOptions{Holders: 4, Tolerate: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The owner adds the policy with a new signed version (the holders
	// keep their shares), as grid dealers --set does.
	next := m.Clone()
	next.Repair = discovery.RepairPolicy{Grace: grace}
	next.SharesVersion = m.Shares()
	next.Version = m.Version + 1
	next.Time = time.Time{}
	if err := s.client.disc.Publish(ctx, next, s.client.sk); err != nil {
		t.Fatal(err)
	}
	s.m = next
	for i, h := range s.holders {
		s.byID[h.ID()] = i
		if !containsPeer(next.Holders, h.ID()) {
			s.spare = i
		}
	}
	for _, h := range s.holders {
		eventually(t, 20*time.Second, "a holder learns the repair policy", func() bool {
			l, ok := h.disc.Latest("rep")
			return ok && l.Repair.Enabled()
		})
	}
	return s
}

// stored returns holder i's stored shares of "rep" at version v.
func (s *repairSwarm) stored(t *testing.T, i int, v uint64) map[string]*tensor.Dense[uint64] {
	t.Helper()
	sm, err := s.holders[i].store.getVersion(s.client.ID(), "rep", v)
	if err != nil {
		t.Fatalf("holder %d version %d: %v", i, v, err)
	}
	return sm.weights
}

// query checks one exact answer of the seed.
func (s *repairSwarm) query(t *testing.T, ctx context.Context) {
	t.Helper()
	res, err := s.client.Infer(ctx, "rep", vec(5, 3), InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, res, 1022)
}

// amended waits until the client knows the manifest amended by repair seq.
func (s *repairSwarm) amended(t *testing.T, seq uint64) *discovery.Manifest {
	t.Helper()
	var m *discovery.Manifest
	eventually(t, 30*time.Second, "the amended manifest reaches the client", func() bool {
		l, ok := s.client.disc.Latest("rep")
		m = l
		return ok && l.RepairSeq == seq
	})
	return m
}

// sumShares adds, for every weight, share i's copy taken from pick(i).
func sumWeights(t *testing.T, m *discovery.Manifest, pick func(i int) map[string]*tensor.Dense[uint64]) map[string][]uint64 {
	t.Helper()
	p, _ := plan.Seed()
	out := map[string][]uint64{}
	for _, v := range p.Weights {
		for i := range m.ShareHolders() {
			w := pick(i)[replicaName(i, v.Name)]
			if w == nil {
				t.Fatalf("share %d of %q missing", i, v.Name)
			}
			if out[v.Name] == nil {
				out[v.Name] = make([]uint64, len(w.Data))
			}
			for k, x := range w.Data {
				out[v.Name][k] += x
			}
		}
	}
	return out
}

func TestRepairAskedByOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	s := newRepairSwarm(t, ctx, time.Hour)
	m := s.m
	if _, err := s.client.AskRepair(ctx, "rep"); !errors.Is(err, ErrNothingToRepair) {
		t.Fatalf("every holder up: err %v, want ErrNothingToRepair", err)
	}
	old := map[int]map[string]*tensor.Dense[uint64]{}
	for _, h := range m.Holders {
		old[s.byID[h]] = s.stored(t, s.byID[h], m.Shares())
	}
	lost := s.byID[m.Holders[1]]
	s.holders[lost].Close()
	res, err := s.client.AskRepair(ctx, "rep")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair: %v, %d bytes moved", res.Duration, res.BytesMoved)
	spare := s.holders[s.spare].ID()
	if !slices.Equal(res.Replaced, []peer.ID{m.Holders[1]}) || !slices.Equal(res.Newcomers, []peer.ID{spare}) {
		t.Fatalf("replaced %v by %v, want %s by the spare %s", res.Replaced, res.Newcomers, m.Holders[1], spare)
	}
	am := s.amended(t, 1)
	if am.Holders[1] != spare || am.Shares() != res.SharesVersion || am.Version != m.Version {
		t.Fatalf("amended manifest: holders %v, shares %d, version %d", am.Holders, am.Shares(), am.Version)
	}
	for range 3 {
		s.query(t, ctx)
	}
	newOf := func(i int) map[string]*tensor.Dense[uint64] {
		return s.stored(t, s.byID[am.Holders[am.ShareHolders()[i][0]]], am.Shares())
	}
	oldOf := func(i int) map[string]*tensor.Dense[uint64] { return old[s.byID[m.Holders[m.ShareHolders()[i][0]]]] }
	want, got := sumWeights(t, m, oldOf), sumWeights(t, am, newOf)
	for name := range want {
		if !slices.Equal(want[name], got[name]) {
			t.Fatalf("weight %q: the new shares do not add up to the old ones' sum", name)
		}
	}
	// The lost holder's old disk plus the new shares of the rest: off by
	// a random value in every word.
	lostShares := m.HeldShares(1)
	mixed := sumWeights(t, am, func(i int) map[string]*tensor.Dense[uint64] {
		if slices.Contains(lostShares, i) {
			return old[lost]
		}
		return newOf(i)
	})
	for name, ws := range mixed {
		for k, v := range ws {
			if v == want[name][k] {
				t.Fatalf("weight %q word %d: the old disk and the new shares combine", name, k)
			}
		}
	}
	for _, h := range am.Holders {
		i := s.byID[h]
		eventually(t, 20*time.Second, "the old version is deleted", func() bool {
			return slices.Equal(s.holders[i].store.versions(s.client.ID(), "rep"), []uint64{am.Shares()})
		})
	}
}

func TestRepairByWatcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	s := newRepairSwarm(t, ctx, 2*time.Second)
	lost := s.byID[s.m.Holders[3]]
	start := time.Now()
	s.holders[lost].Close()
	am := s.amended(t, 1)
	t.Logf("repaired by the watcher %v after the holder closed (grace 2 s)", time.Since(start))
	if am.Holders[3] != s.holders[s.spare].ID() {
		t.Fatalf("holders %v, want the spare at 3", am.Holders)
	}
	s.query(t, ctx)
}

func TestRepairFailsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	s := newRepairSwarm(t, ctx, time.Hour)
	lost := s.byID[s.m.Holders[0]]
	s.holders[lost].Close()
	spare := s.holders[s.spare].ID()
	// The newcomer dies once its session started: the session goes on
	// only once its host is closed (bounded, in case Close waits for the
	// session), so it can no longer sign the repair. With only its context
	// done it could still sign, the repair then being published (and a
	// client already amended querying a dealer not yet amended).
	hook := func(n *Node, stage string) {
		if n.ID() == spare && stage == "start" {
			closed := make(chan struct{})
			go func() { n.Close(); close(closed) }()
			<-n.ctx.Done()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
			}
		}
	}
	repairHook.Store(&hook)
	defer repairHook.Store(nil)
	if _, err := s.client.AskRepair(ctx, "rep"); err == nil {
		t.Fatal("the newcomer died mid-repair: the repair succeeded")
	}
	repairHook.Store(nil)
	for _, h := range s.m.Holders[1:] {
		i := s.byID[h]
		if l, _ := s.holders[i].disc.Latest("rep"); l.RepairSeq != 0 {
			t.Fatalf("holder %d switched to repair seq %d", i, l.RepairSeq)
		}
		eventually(t, 20*time.Second, "the staged version is deleted", func() bool {
			return slices.Equal(s.holders[i].store.versions(s.client.ID(), "rep"), []uint64{s.m.Shares()})
		})
	}
	s.query(t, ctx)
	s.holders[s.spare] = s.startHolder(t, s.spare, false, nil)
	if _, err := s.client.AskRepair(ctx, "rep"); err != nil {
		t.Fatalf("a later repair: %v", err)
	}
	s.amended(t, 1)
	s.query(t, ctx)
}

func TestReshareByOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	s := newRepairSwarm(t, ctx, time.Hour)
	m := s.m
	old := s.stored(t, s.byID[m.Holders[2]], m.Shares())
	spare := s.holders[s.spare].ID()
	next := slices.Clone(m.Holders)
	next[2] = spare
	if _, err := s.client.Reshare(ctx, "rep", m.Holders); !errors.Is(err, ErrBadInput) {
		t.Fatalf("the current list: err %v, want ErrBadInput", err)
	}
	res, err := s.client.Reshare(ctx, "rep", next)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("re-shared in %v, %d bytes moved", res.Duration, res.BytesMoved)
	var nm *discovery.Manifest
	eventually(t, 30*time.Second, "the new manifest reaches the client", func() bool {
		l, ok := s.client.disc.Latest("rep")
		nm = l
		return ok && l.Version > m.Version && l.RepairSeq == 0
	})
	if !slices.Equal(nm.Holders, next) || nm.Shares() != res.SharesVersion || nm.Shares() > nm.Version {
		t.Fatalf("new manifest: holders %v, shares %d, version %d", nm.Holders, nm.Shares(), nm.Version)
	}
	s.query(t, ctx)
	gone := s.byID[m.Holders[2]]
	eventually(t, 20*time.Second, "the replaced holder drops its shares", func() bool {
		return len(s.holders[gone].store.versions(s.client.ID(), "rep")) == 0
	})
	// The replaced holder's old shares plus the new ones of the rest.
	want := sumWeights(t, m, func(i int) map[string]*tensor.Dense[uint64] {
		return s.stored(t, s.byID[nm.Holders[nm.ShareHolders()[i][0]]], nm.Shares())
	})
	mixed := sumWeights(t, m, func(i int) map[string]*tensor.Dense[uint64] {
		if slices.Contains(m.HeldShares(2), i) {
			return old
		}
		return s.stored(t, s.byID[nm.Holders[nm.ShareHolders()[i][0]]], nm.Shares())
	})
	for name, ws := range mixed {
		for k, v := range ws {
			if v == want[name][k] {
				t.Fatalf("weight %q word %d: the replaced holder's shares combine with the new ones", name, k)
			}
		}
	}
}

// A repair message from a peer with no part in the repair is refused:
// a plan from a non-holder (the dealer), a start, transfer or contribution for a
// session that does not exist (or from the wrong peer), a request to
// repair from a peer that is not the owner.
func TestRepairRefusesStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s := newRepairSwarm(t, ctx, time.Hour)
	m := s.m
	target, spare := s.holders[s.byID[m.Holders[0]]], s.holders[s.spare]
	rp, err := buildRepairPlan(m, []peer.ID{m.Holders[1]}, []peer.ID{spare.ID()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rp.session = []byte("0123456789abcdef")
	ask, err := signRepairAsk(s.client.sk, "rep", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msgs := []struct {
		name string
		from *Node
		msg  *pb.RepairMessage
		want string
	}{
		{"a plan from a non-holder", s.boot, &pb.RepairMessage{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}}, "not a carried-over holder"},
		{"a plan from the newcomer", spare, &pb.RepairMessage{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}}, "not a carried-over holder"},
		{"a plan while every holder is up", s.holders[s.byID[m.Holders[2]]], &pb.RepairMessage{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}}, "it is not replaced"},
		{"a start of no session", s.boot, &pb.RepairMessage{Kind: &pb.RepairMessage_Start{Start: rp.session}}, "no repair session"},
		{"a transfer of no session", spare, &pb.RepairMessage{Kind: &pb.RepairMessage_Transfer{Transfer: &pb.RepairTransfer{Session: rp.session}}}, "no repair session"},
		{"a contribution of no session", s.boot, &pb.RepairMessage{Kind: &pb.RepairMessage_Contribution{Contribution: &pb.RepairContribution{Session: rp.session}}}, "no repair session"},
		{"a repair request from a holder", s.holders[s.byID[m.Holders[3]]], &pb.RepairMessage{Kind: &pb.RepairMessage_Ask{Ask: ask}}, "only the owner"},
		{"a short session id", s.boot, &pb.RepairMessage{Kind: &pb.RepairMessage_Start{Start: []byte{1}}}, "session id"},
	}
	for _, tc := range msgs {
		_, err := tc.from.repairCall(ctx, target.ID(), tc.msg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	target.rep.mu.Lock()
	open := len(target.rep.sessions)
	target.rep.mu.Unlock()
	if l, _ := target.disc.Latest("rep"); l.RepairSeq != 0 || open != 0 {
		t.Fatalf("after the refusals: repair seq %d, %d sessions open", l.RepairSeq, open)
	}
}
