package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// repairVectorsFile holds the repair-chain vectors the browser client's
// unit tests (cmd/grid/web/test/units.test.mjs) check its verifier
// against. Regenerate with GRID_UPDATE_VECTORS=1 go test -run
// TestRepairVectors ./discovery/.
const repairVectorsFile = "../cmd/grid/web/test/repair_vectors.json"

// repairVectors is the file's content: an owner-signed envelope, a valid
// chain of two repairs with the manifest after each, and refused records,
// each tried on the manifest after the first At records of the chain.
type repairVectors struct {
	Envelope []byte          `json:"envelope"`
	Chain    [][]byte        `json:"chain"`
	After    []vectorState   `json:"after"`
	Refused  []vectorRefusal `json:"refused"`
}

type vectorState struct {
	Seq           uint64   `json:"seq"`
	Holders       []string `json:"holders"`
	SharesVersion uint64   `json:"shares_version,string"`
}

type vectorRefusal struct {
	Name   string `json:"name"`
	At     int    `json:"at"`
	Record []byte `json:"record"`
	Error  string `json:"error"` // a phrase both verifiers' messages contain
}

// seededKey is a deterministic ed25519 key.
func seededKey(t testing.TB, name string) (crypto.PrivKey, peer.ID) {
	t.Helper()
	seed := sha256.Sum256([]byte("grid repair vectors " + name))
	return keyFrom(t, bytes.NewReader(seed[:]))
}

// vectorFixture is newRepairFixture with deterministic keys and a plan the
// browser accepts.
func vectorFixture(t testing.TB) *repairFixture {
	fx := &repairFixture{keys: make(map[peer.ID]crypto.PrivKey)}
	gen := func(name string) peer.ID {
		sk, id := seededKey(t, name)
		fx.keys[id] = sk
		return id
	}
	owner := gen("owner")
	fx.ownerSK = fx.keys[owner]
	holders := []peer.ID{gen("h0"), gen("h1"), gen("h2"), gen("h3")}
	fx.dealer = gen("dealer")
	fx.candidates = []peer.ID{gen("c0"), gen("c1"), gen("c2")}
	fx.outsider = gen("outsider")
	m := testManifest("repaired", owner, holders, 1700000000000)
	m.Plan = []byte(`{"input":{"name":"x","shape":[-1,2]},"output":"y","nodes":[]}`)
	m.PlanHash = planHash(m.Plan)
	m.Tolerate = 1
	m.Replicas = ReplicatedShares(4, 1)
	m.Dealers = []peer.ID{fx.dealer}
	m.Repair = RepairPolicy{Grace: time.Hour, Candidates: fx.candidates}
	fx.m = m
	return fx
}

func buildRepairVectors(t *testing.T) *repairVectors {
	fx := vectorFixture(t)
	v := &repairVectors{Envelope: mustSeal(t, fx.m, fx.ownerSK)}
	states := []*Manifest{fx.m}
	for _, repl := range []map[int]peer.ID{{0: fx.candidates[0]}, {2: fx.candidates[1]}} {
		prev := states[len(states)-1]
		r := fx.sign(t, draft(prev, repl))
		r.SharesVersion = prev.Shares() + 1000
		fx.sign(t, r)
		next, err := prev.Amend(r)
		if err != nil {
			t.Fatal(err)
		}
		v.Chain = append(v.Chain, mustMarshalRepair(t, r))
		v.After = append(v.After, vectorState{Seq: next.RepairSeq, Holders: peerStrings(next.Holders), SharesVersion: next.Shares()})
		states = append(states, next)
	}
	refuse := func(name string, at int, repl map[int]peer.ID, edit func(*Repair), sigs func(*Repair), phrase string) {
		r := draft(states[at], repl)
		if edit != nil {
			edit(r)
		}
		fx.sign(t, r)
		if sigs != nil {
			sigs(r)
		}
		if _, err := states[at].Amend(r); err == nil || !bytes.Contains([]byte(err.Error()), []byte(phrase)) {
			t.Fatalf("vector %q: Go says %v, want %q", name, err, phrase)
		}
		v.Refused = append(v.Refused, vectorRefusal{Name: name, At: at, Record: mustMarshalRepair(t, r), Error: phrase})
	}
	h := fx.m.Holders
	one := map[int]peer.ID{1: fx.candidates[2]}
	refuse("forged signature", 0, one, nil, func(r *Repair) { r.Sigs[h[3]][9] ^= 1 }, "bad signature")
	refuse("missing signature", 0, one, nil, func(r *Repair) { delete(r.Sigs, h[0]) }, "no signature")
	refuse("signature of a non-holder", 1, one, nil, func(r *Repair) {
		sig, err := fx.keys[fx.outsider].Sign(mustSigningBytes(t, r))
		if err != nil {
			t.Fatal(err)
		}
		r.Sigs[fx.outsider] = sig
	}, "not a holder")
	refuse("wrong seq", 1, one, func(r *Repair) { r.Seq = 1 }, nil, "want seq")
	refuse("older base", 0, one, func(r *Repair) { r.Base-- }, nil, "amends version")
	refuse("wrong previous holders", 1, one, func(r *Repair) { r.PrevHolders = h }, nil, "previous holders")
	refuse("candidate not allowed", 0, map[int]peer.ID{1: fx.outsider}, nil, nil, "not a repair candidate")
	refuse("too many replaced", 0, map[int]peer.ID{1: fx.candidates[2], 3: fx.candidates[1]}, nil, nil, "replaces 2 holders")
	refuse("holder moved", 0, map[int]peer.ID{0: h[1]}, nil, nil, "already a holder")
	refuse("stale shares version", 0, one, func(r *Repair) { r.SharesVersion = fx.m.Shares() }, nil, "not newer")
	return v
}

func peerStrings(ps []peer.ID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// TestRepairVectors checks that the committed browser vectors are what the
// Go verifier gives (or rewrites them with GRID_UPDATE_VECTORS=1).
func TestRepairVectors(t *testing.T) {
	v := buildRepairVectors(t)
	got, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.FromSlash(repairVectorsFile)
	if os.Getenv("GRID_UPDATE_VECTORS") != "" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with GRID_UPDATE_VECTORS=1 go test -run TestRepairVectors ./discovery/)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: regenerate it with GRID_UPDATE_VECTORS=1 go test -run TestRepairVectors ./discovery/", repairVectorsFile)
	}
}
