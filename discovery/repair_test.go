package discovery

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// repairFixture is a 4-holder model tolerating 1 lost holder, with a repair
// policy, and the keys of every peer involved.
type repairFixture struct {
	ownerSK    crypto.PrivKey
	m          *Manifest
	dealer     peer.ID
	candidates []peer.ID // the policy's candidates
	outsider   peer.ID   // neither holder, dealer nor candidate
	keys       map[peer.ID]crypto.PrivKey
}

func newRepairFixture(t testing.TB) *repairFixture { return newRepairFixtureN(t, 4, 1) }

// newRepairFixtureN is newRepairFixture with n holders tolerating f.
func newRepairFixtureN(t testing.TB, n, f int) *repairFixture {
	t.Helper()
	fx := &repairFixture{keys: make(map[peer.ID]crypto.PrivKey)}
	gen := func() peer.ID {
		sk, id := newKey(t)
		fx.keys[id] = sk
		return id
	}
	owner := gen()
	fx.ownerSK = fx.keys[owner]
	holders := make([]peer.ID, n)
	for i := range holders {
		holders[i] = gen()
	}
	fx.dealer = gen()
	fx.candidates = []peer.ID{gen(), gen(), gen()}
	fx.outsider = gen()
	m := testManifest("repaired", owner, holders, 10)
	m.Tolerate = f
	m.Replicas = ReplicatedShares(n, f)
	m.Dealers = []peer.ID{fx.dealer}
	m.Repair = RepairPolicy{Grace: time.Hour, Candidates: slices.Clone(fx.candidates)}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	fx.m = m
	return fx
}

// draft is an unsigned repair of prev putting the given peers at the given
// party indices.
func draft(prev *Manifest, repl map[int]peer.ID) *Repair {
	r := &Repair{
		Model:         prev.ID,
		Owner:         prev.Owner,
		Base:          prev.Version,
		Seq:           prev.RepairSeq + 1,
		PrevHolders:   slices.Clone(prev.Holders),
		Holders:       slices.Clone(prev.Holders),
		SharesVersion: prev.Shares() + 1,
		Time:          time.Unix(1800000000, 5).UTC(),
	}
	for i, p := range repl {
		r.Holders[i] = p
	}
	return r
}

// sign has every peer of r.Holders whose key fx knows sign r.
func (fx *repairFixture) sign(t testing.TB, r *Repair) *Repair {
	t.Helper()
	r.Sigs = make(map[peer.ID][]byte)
	for _, h := range r.Holders {
		sk, ok := fx.keys[h]
		if !ok {
			continue
		}
		sig, err := SignRepair(r, sk)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		r.Sigs[h] = sig
	}
	return r
}

func TestRepairChain(t *testing.T) {
	fx := newRepairFixture(t)
	r1 := fx.sign(t, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	m1, err := fx.m.Amend(r1)
	if err != nil {
		t.Fatalf("first repair: %v", err)
	}
	if m1.RepairSeq != 1 || m1.Holders[0] != fx.candidates[0] || m1.Shares() != r1.SharesVersion || m1.Version != fx.m.Version {
		t.Fatalf("amended manifest: seq %d holders %v shares %d version %d", m1.RepairSeq, m1.Holders, m1.Shares(), m1.Version)
	}
	if fx.m.RepairSeq != 0 || fx.m.Holders[0] == fx.candidates[0] {
		t.Fatal("Amend changed the manifest it amends")
	}
	if err := m1.Validate(); err != nil {
		t.Fatalf("amended manifest (shares version %d > version %d) invalid: %v", m1.Shares(), m1.Version, err)
	}
	r2 := fx.sign(t, draft(m1, map[int]peer.ID{2: fx.candidates[1]}))
	m2, err := m1.Amend(r2)
	if err != nil {
		t.Fatalf("second repair: %v", err)
	}
	want := []peer.ID{fx.candidates[0], fx.m.Holders[1], fx.candidates[1], fx.m.Holders[3]}
	if m2.RepairSeq != 2 || !slices.Equal(m2.Holders, want) || m2.Shares() != r2.SharesVersion {
		t.Fatalf("after two repairs: seq %d holders %v shares %d", m2.RepairSeq, m2.Holders, m2.Shares())
	}
	for name, tc := range map[string]struct {
		r    *Repair
		prev *Manifest
	}{"replay of the first": {r1, m1}, "second on the owner's": {r2, fx.m}, "second again": {r2, m2}} {
		if _, err := tc.prev.Amend(tc.r); !errors.Is(err, ErrBadRepair) {
			t.Errorf("%s: err %v, want ErrBadRepair", name, err)
		}
	}
	// The owner's next version, built from the amended manifest, keeps
	// the repaired holders and drops the repair sequence.
	next := m2.Clone()
	next.Version = m2.Shares() + 1
	got, err := Open(mustSeal(t, next, fx.ownerSK))
	if err != nil {
		t.Fatal(err)
	}
	if got.RepairSeq != 0 || !slices.Equal(got.Holders, want) || got.Repair.Grace != time.Hour || !slices.Equal(got.Repair.Candidates, fx.candidates) {
		t.Fatalf("owner's next version: seq %d holders %v policy %+v", got.RepairSeq, got.Holders, got.Repair)
	}
	// Sealing an amended manifest whose shares version exceeds its version
	// fails at the owner, not at every receiver.
	if _, err := Seal(m2, fx.ownerSK); !errors.Is(err, ErrInvalidManifest) {
		t.Fatalf("seal amended manifest with its base version: err %v, want ErrInvalidManifest", err)
	}
}

func TestRepairRefused(t *testing.T) {
	fx := newRepairFixture(t)
	h := fx.m.Holders
	newc := fx.candidates[0]
	anyPolicy := func(_ *Repair, m *Manifest) { m.Repair.Candidates = nil }
	cases := []struct {
		name  string
		repl  map[int]peer.ID
		edit  func(r *Repair, prev *Manifest) // before signing
		sigs  func(r *Repair)                 // after signing
		wants string
	}{
		{name: "wrong seq", edit: func(r *Repair, _ *Manifest) { r.Seq = 2 }, wants: "want seq 1"},
		{name: "seq zero", edit: func(r *Repair, _ *Manifest) { r.Seq = 0 }, wants: "want seq 1"},
		{name: "older base", edit: func(r *Repair, _ *Manifest) { r.Base-- }, wants: "amends version 9"},
		{name: "wrong model", edit: func(r *Repair, _ *Manifest) { r.Model = "other" }, wants: "amends model"},
		{name: "wrong owner", edit: func(r *Repair, _ *Manifest) { r.Owner = fx.outsider }, wants: "manifest owner"},
		{name: "wrong prev holders", edit: func(r *Repair, _ *Manifest) { r.PrevHolders[1] = fx.outsider }, wants: "previous holders"},
		{name: "stale shares version", edit: func(r *Repair, m *Manifest) { r.SharesVersion = m.Shares() }, wants: "not newer"},
		{name: "no time", edit: func(r *Repair, _ *Manifest) { r.Time = time.Time{} }, wants: "time not set"},
		{name: "too many replaced", repl: map[int]peer.ID{0: newc, 1: fx.candidates[1]}, wants: "replaces 2 holders, want 1 to 1"},
		{name: "none replaced", repl: map[int]peer.ID{}, wants: "replaces 0 holders"},
		{name: "fewer holders", edit: func(r *Repair, _ *Manifest) { r.Holders = r.Holders[:3] }, wants: "3 holders, manifest has 4"},
		{name: "candidate not allowed", repl: map[int]peer.ID{0: fx.outsider}, wants: "not a repair candidate"},
		{name: "owner brought in", repl: map[int]peer.ID{0: fx.m.Owner}, edit: anyPolicy, wants: "is the owner"},
		{name: "dealer brought in", repl: map[int]peer.ID{0: fx.dealer}, edit: anyPolicy, wants: "is a dealer"},
		{name: "holder named twice", repl: map[int]peer.ID{0: newc, 1: newc}, wants: "named twice"},
		{name: "holder moved", repl: map[int]peer.ID{0: h[1]}, wants: "already a holder"},
		{name: "holders swapped", repl: map[int]peer.ID{0: h[1], 1: h[0]}, wants: "already a holder"},
		{name: "invalid newcomer", repl: map[int]peer.ID{0: peer.ID("junk")}, edit: anyPolicy, wants: "invalid peer id"},
		{name: "signature missing", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) { delete(r.Sigs, h[3]) }, wants: "no signature of holder"},
		{name: "newcomer's signature missing", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) { delete(r.Sigs, newc) }, wants: "no signature of holder"},
		{name: "signature forged", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) { r.Sigs[h[2]][5] ^= 1 }, wants: "bad signature"},
		{name: "signature by another key", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) {
			sig, err := fx.keys[fx.outsider].Sign(mustSigningBytes(t, r))
			if err != nil {
				t.Fatal(err)
			}
			r.Sigs[h[1]] = sig
		}, wants: "bad signature"},
		{name: "signature from a non-holder", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) {
			sig, err := fx.keys[h[0]].Sign(mustSigningBytes(t, r))
			if err != nil {
				t.Fatal(err)
			}
			r.Sigs[h[0]] = sig
		}, wants: "not a holder"},
		{name: "signed fields changed after signing", repl: map[int]peer.ID{0: newc}, sigs: func(r *Repair) { r.SharesVersion++ }, wants: "bad signature"},
		{name: "policy disabled", repl: map[int]peer.ID{0: newc}, edit: func(_ *Repair, m *Manifest) { m.Repair = RepairPolicy{} }, wants: "allows no repair"},
		{name: "plain mode", repl: map[int]peer.ID{0: newc}, edit: func(_ *Repair, m *Manifest) { m.Mode = ModePlain }, wants: "plain-mode"},
		{name: "unpublished", repl: map[int]peer.ID{0: newc}, edit: func(_ *Repair, m *Manifest) { m.Deleted = true }, wants: "unpublished"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prev := fx.m.Clone()
			repl := tc.repl
			if repl == nil {
				repl = map[int]peer.ID{0: newc}
			}
			r := draft(prev, repl)
			if tc.edit != nil {
				tc.edit(r, prev)
			}
			fx.sign(t, r)
			if tc.sigs != nil {
				tc.sigs(r)
			}
			_, err := prev.Amend(r)
			if !errors.Is(err, ErrBadRepair) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("err %v, want ErrBadRepair containing %q", err, tc.wants)
			}
		})
	}
}

func mustSigningBytes(t testing.TB, r *Repair) []byte {
	t.Helper()
	b, err := r.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRepairAnyPeerPolicy(t *testing.T) {
	fx := newRepairFixture(t)
	fx.m.Repair.Candidates = nil
	r := fx.sign(t, draft(fx.m, map[int]peer.ID{3: fx.outsider}))
	if _, err := fx.m.Amend(r); err != nil {
		t.Fatalf("policy without candidates refused %s: %v", fx.outsider, err)
	}
}

func TestSignRepair(t *testing.T) {
	fx := newRepairFixture(t)
	r := draft(fx.m, map[int]peer.ID{0: fx.candidates[0]})
	if _, err := SignRepair(r, fx.keys[fx.m.Holders[0]]); !errors.Is(err, ErrBadRepair) {
		t.Fatalf("replaced holder signed: err %v, want ErrBadRepair", err)
	}
	if _, err := SignRepair(r, nil); err == nil {
		t.Fatal("nil key signed")
	}
	a, b := mustSigningBytes(t, r), mustSigningBytes(t, r.Clone())
	if string(a) != string(b) || !strings.HasPrefix(string(a), RepairDomain+"\x00") {
		t.Fatalf("signing bytes not canonical or not domain-separated: %q", a[:20])
	}
	// The signature covers the domain: it does not verify over the body
	// alone (so no other signed message of the key can pass for it).
	sig, err := SignRepair(r, fx.keys[fx.m.Holders[1]])
	if err != nil {
		t.Fatal(err)
	}
	body, err := r.body()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := fx.keys[fx.m.Holders[1]].GetPublic().Verify(body, sig); ok {
		t.Fatal("repair signature verifies without its domain")
	}
}

func TestValidateRepairPolicy(t *testing.T) {
	fx := newRepairFixture(t)
	many := peerIDs(t, MaxRepairCandidates+1)
	cases := []struct {
		name  string
		edit  func(m *Manifest)
		wants string // "" = valid
	}{
		{name: "valid", edit: func(*Manifest) {}},
		{name: "no policy", edit: func(m *Manifest) { m.Repair = RepairPolicy{} }},
		{name: "any peer", edit: func(m *Manifest) { m.Repair.Candidates = nil }},
		{name: "negative grace", edit: func(m *Manifest) { m.Repair.Grace = -time.Second }, wants: "negative"},
		{name: "candidates without grace", edit: func(m *Manifest) { m.Repair.Grace = 0 }, wants: "without a repair grace"},
		{name: "tolerate 0", edit: func(m *Manifest) { m.Tolerate, m.Replicas = 0, nil }, wants: "tolerate >= 1"},
		{name: "too many candidates", edit: func(m *Manifest) { m.Repair.Candidates = many }, wants: "at most 16"},
		{name: "candidate twice", edit: func(m *Manifest) { m.Repair.Candidates[1] = m.Repair.Candidates[0] }, wants: "named twice"},
		{name: "invalid candidate", edit: func(m *Manifest) { m.Repair.Candidates[1] = "junk" }, wants: "repair candidate 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := fx.m.Clone()
			tc.edit(m)
			err := m.Validate()
			if tc.wants == "" {
				if err != nil {
					t.Fatalf("valid policy refused: %v", err)
				}
				got, err := Open(mustSeal(t, m, fx.ownerSK))
				if err != nil || got.Repair.Grace != m.Repair.Grace || !slices.Equal(got.Repair.Candidates, m.Repair.Candidates) {
					t.Fatalf("round trip: %+v, %v; want %+v", got.Repair, err, m.Repair)
				}
				return
			}
			if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("err %v, want ErrInvalidManifest containing %q", err, tc.wants)
			}
		})
	}
}
