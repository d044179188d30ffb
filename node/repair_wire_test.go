package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/node/pb"
)

func testPeer(t testing.TB) (peer.ID, crypto.PrivKey) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id, sk
}

// repairFixture is a manifest of 4 holders tolerating 1 with a repair
// policy, and a valid plan replacing holder 1 by a newcomer.
func repairFixture(t testing.TB) (*discovery.Manifest, *repairPlan, crypto.PrivKey, []peer.ID) {
	owner, osk := testPeer(t)
	var ps []peer.ID
	for range 7 {
		p, _ := testPeer(t)
		ps = append(ps, p)
	}
	m := &discovery.Manifest{
		ID: "rep", Owner: owner, Mode: discovery.ModeMPC, Holders: ps[:4], Version: 10, Tolerate: 1,
		Replicas: discovery.CNFShares(4, 1), Dealers: []peer.ID{ps[5]}, Repair: discovery.RepairPolicy{Grace: time.Minute},
	}
	rp, err := buildRepairPlan(m, []peer.ID{ps[1]}, []peer.ID{ps[4]}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rp.session = make([]byte, repairSessionSize)
	return m, rp, osk, ps
}

func TestCheckRepairPlan(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (self, from peer.ID)
		want string
	}{
		{"valid", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) { return ps[4], ps[0] }, ""},
		{"wrong base", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Base++
			return ps[2], ps[0]
		}, "does not follow"},
		{"wrong seq", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Seq = 2
			return ps[2], ps[0]
		}, "does not follow"},
		{"old shares version", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.SharesVersion = m.Version
			return ps[2], ps[0]
		}, "not newer"},
		{"shares version ahead of the clock", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.SharesVersion = 1 << 62
			return ps[2], ps[0]
		}, "ahead of the clock"},
		{"policy off", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			m.Repair = discovery.RepairPolicy{}
			return ps[2], ps[0]
		}, "allows no repair"},
		{"newcomer is a dealer", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[1] = ps[5]
			return ps[2], ps[0]
		}, "cannot be brought in"},
		{"newcomer is the owner", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[1] = m.Owner
			return ps[2], ps[0]
		}, "cannot be brought in"},
		{"not a candidate", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			m.Repair.Candidates = []peer.ID{ps[6]}
			return ps[2], ps[0]
		}, "not one of"},
		{"two replaced", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[3] = ps[6]
			return ps[2], ps[0]
		}, "replaces 2 holders"},
		{"none replaced", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[1] = ps[1]
			return ps[2], ps[0]
		}, "replaces 0 holders"},
		{"sent by the newcomer", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) { return ps[2], ps[4] }, "not a carried-over holder"},
		{"sent by the replaced", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) { return ps[2], ps[1] }, "not a carried-over holder"},
		{"source not holding the share", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			i := slices.IndexFunc(rp.sources, func(p peer.ID) bool { return p != "" })
			rp.sources[i] = ps[6]
			return ps[2], ps[0]
		}, "not a carried-over holder of it"},
		{"source of a share that stays", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			i := slices.Index(rp.sources, "")
			rp.sources[i] = ps[0]
			return ps[2], ps[0]
		}, "no new holder"},
		{"sources cut", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.sources = rp.sources[:2]
			return ps[2], ps[0]
		}, "share sources"},
		{"too old", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Time = time.Now().Add(-time.Hour)
			return ps[2], ps[0]
		}, "too far"},
		{"not in the list", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) { return ps[6], ps[0] }, "not in the repair's holder list"},
		{"owner: no policy, not a candidate", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			m.Repair = discovery.RepairPolicy{}
			m.Repair.Candidates = []peer.ID{ps[6]}
			return ps[2], m.Owner
		}, ""},
		{"owner: both holders of a share", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[3] = ps[6]
			return ps[2], m.Owner
		}, "not a carried-over holder of it"},
		{"owner: a dealer brought in", func(m *discovery.Manifest, rp *repairPlan, ps []peer.ID) (peer.ID, peer.ID) {
			rp.rec.Holders[1] = ps[5]
			return ps[2], m.Owner
		}, "cannot be brought in"},
	}
	for _, tc := range tests {
		m, rp, _, ps := repairFixture(t)
		self, from := tc.edit(m, rp, ps)
		_, _, err := checkRepairPlan(m, rp, self, from, time.Now())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestBuildRepairPlanSources(t *testing.T) {
	m, rp, _, ps := repairFixture(t)
	// Holder 1 holds 3 of the 6 shares of CNF(4, 1): each has one source,
	// its other holder, and the others none.
	for i, hs := range m.ShareHolders() {
		src := rp.sources[i]
		if !slices.Contains(hs, 1) {
			if src != "" {
				t.Errorf("share %d stays, source %s", i, src)
			}
			continue
		}
		if src == "" || src == ps[1] || !slices.ContainsFunc(hs, func(j int) bool { return m.Holders[j] == src }) {
			t.Errorf("share %d: source %s", i, src)
		}
	}
	two := m.Clone()
	two.Tolerate = 2
	if _, err := buildRepairPlan(two, []peer.ID{ps[1], ps[2]}, []peer.ID{ps[4], ps[6]}, time.Now()); err == nil {
		t.Error("both holders of share {1,2} down: a plan")
	}
}

func TestCheckRepairAsk(t *testing.T) {
	m, _, osk, ps := repairFixture(t)
	now := time.Now()
	ask, err := signRepairAsk(osk, "rep", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRepairAsk(ask, "rep", m.Owner, now); err != nil {
		t.Fatal(err)
	}
	if err := checkRepairAsk(ask, "other", m.Owner, now); err == nil {
		t.Error("another model: accepted")
	}
	if err := checkRepairAsk(ask, "rep", m.Owner, now.Add(time.Hour)); err == nil {
		t.Error("an hour old: accepted")
	}
	if err := checkRepairAsk(ask, "rep", ps[0], now); err == nil {
		t.Error("checked against another peer's key: accepted")
	}
	if err := checkRepairAsk(nil, "rep", m.Owner, now); err == nil {
		t.Error("no request: accepted")
	}
}

func TestRepairPlanRoundTrip(t *testing.T) {
	_, rp, _, _ := repairFixture(t)
	b, err := proto.Marshal(&pb.RepairMessage{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := decodeRepairMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRepairPlan(msg.GetPrepare())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.rec.Holders, rp.rec.Holders) || !slices.Equal(got.sources, rp.sources) || !got.rec.Time.Equal(rp.rec.Time) || got.rec.SharesVersion != rp.rec.SharesVersion {
		t.Fatalf("round trip: %+v, want %+v", got.rec, rp.rec)
	}
}

func TestShareLayout(t *testing.T) {
	p, _ := plan.Seed()
	l := newShareLayout(p)
	words := share.NewPRG(share.Seed{1}).Uint64s(l.words())
	got, err := l.fromSet(l.toSet(words))
	if err != nil || !slices.Equal(got, words) {
		t.Fatalf("round trip: %v", err)
	}
	bad := l.toSet(words)
	bad.Tensors[0].Name = "x"
	if _, err := l.fromSet(bad); err == nil {
		t.Error("a renamed weight: accepted")
	}
	short := l.toSet(words)
	short.Tensors = short.Tensors[1:]
	if _, err := l.fromSet(short); err == nil {
		t.Error("a missing weight: accepted")
	}
}

// FuzzDecodeRepairMessage: no input makes the decoders panic, and what
// decodes passes through the layout checks without panicking.
func FuzzDecodeRepairMessage(f *testing.F) {
	_, rp, osk, _ := repairFixture(f)
	p, _ := plan.Seed()
	l := newShareLayout(p)
	seed := share.Seed{7}
	words := make([]uint64, l.words())
	ask, _ := signRepairAsk(osk, "rep", time.Now())
	for _, m := range []*pb.RepairMessage{
		{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}},
		{Kind: &pb.RepairMessage_Start{Start: rp.session}},
		{Kind: &pb.RepairMessage_Transfer{Transfer: &pb.RepairTransfer{Session: rp.session, Share: 1, Weights: l.toSet(words)}}},
		{Kind: &pb.RepairMessage_Contribution{Contribution: &pb.RepairContribution{Session: rp.session,
			Parts: []*pb.RepairPart{l.encodePart(0, share.Part{Seed: &seed}), l.encodePart(2, share.Part{Words: words})}}}},
		{Kind: &pb.RepairMessage_Ask{Ask: ask}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeRepairMessage(b)
		if err != nil {
			return
		}
		if pr := m.GetPrepare(); pr != nil {
			if _, err := decodeRepairPlan(pr); err != nil {
				t.Fatalf("a checked plan does not decode: %v", err)
			}
		}
		if tr := m.GetTransfer(); tr != nil {
			_, _ = l.fromSet(tr.GetWeights())
		}
		for _, part := range m.GetContribution().GetParts() {
			_, _ = l.decodePart(part)
		}
	})
}
