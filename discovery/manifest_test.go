package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"
)

// newKey returns a fresh ed25519 key and its peer ID.
func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	return keyFrom(t, nil)
}

// keyFrom returns the ed25519 key drawn from r (nil: crypto/rand) and its
// peer ID.
func keyFrom(t testing.TB, r io.Reader) (crypto.PrivKey, peer.ID) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(r)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

func peerIDs(t testing.TB, n int) []peer.ID {
	t.Helper()
	out := make([]peer.ID, n)
	for i := range out {
		_, out[i] = newKey(t)
	}
	return out
}

var testPlan = []byte(`{"version":1,"input":"x","nodes":[]}`)

func planHash(p []byte) string {
	s := sha256.Sum256(p)
	return hex.EncodeToString(s[:])
}

// testManifest is a valid mpc manifest owned by owner.
func testManifest(id string, owner peer.ID, holders []peer.ID, version uint64) *Manifest {
	return &Manifest{
		ID:          id,
		Owner:       owner,
		Mode:        ModeMPC,
		Holders:     holders,
		InputShape:  []int{-1, 2},
		OutputShape: []int{1, 1},
		PlanHash:    planHash(testPlan),
		Plan:        testPlan,
		AllowRemote: true,
		Version:     version,
		Time:        time.Unix(1700000000, 123).UTC(),
	}
}

func mustSeal(t testing.TB, m *Manifest, sk crypto.PrivKey) []byte {
	t.Helper()
	env, err := Seal(m, sk)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return env
}

// sealRaw signs m (or the given record) with sk without Seal's checks, to
// forge bad envelopes.
func sealRaw(t testing.TB, m *Manifest, sk crypto.PrivKey, rec ...record.Record) []byte {
	t.Helper()
	var r record.Record = m
	if len(rec) > 0 {
		r = rec[0]
	}
	env, err := record.Seal(r, sk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	sk, owner := newKey(t)
	m := testManifest("convnet", owner, peerIDs(t, 4), 3)
	env := mustSeal(t, m, sk)
	got, err := Open(env)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if got.ID != m.ID || got.Owner != m.Owner || got.Mode != m.Mode || got.Version != m.Version ||
		got.PlanHash != m.PlanHash || string(got.Plan) != string(got.Plan) || got.AllowRemote != m.AllowRemote ||
		!got.Time.Equal(m.Time) || got.Deleted {
		t.Fatalf("round trip: got %+v, want %+v", got, m)
	}
	for i := range m.Holders {
		if got.Holders[i] != m.Holders[i] {
			t.Fatalf("holder %d: got %s, want %s", i, got.Holders[i], m.Holders[i])
		}
	}
	if len(got.InputShape) != 2 || got.InputShape[0] != -1 || got.InputShape[1] != 2 {
		t.Fatalf("input shape %v", got.InputShape)
	}
	// Sealing is deterministic (ed25519 + deterministic protobuf), so
	// re-sealing gives the same bytes: duplicates are recognised as such.
	if again := mustSeal(t, m, sk); string(again) != string(env) {
		t.Fatal("sealing the same manifest twice gave different envelopes")
	}
}

func TestValidate(t *testing.T) {
	_, owner := newKey(t)
	hs := peerIDs(t, 3)
	cases := []struct {
		name string
		edit func(m *Manifest)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(m *Manifest) {}, ""},
		{"plain one host", func(m *Manifest) { m.Mode = ModePlain; m.Holders = hs[:1] }, ""},
		{"tombstone without fields", func(m *Manifest) {
			*m = Manifest{ID: m.ID, Owner: m.Owner, Version: 9, Time: m.Time, Deleted: true}
		}, ""},
		{"empty id", func(m *Manifest) { m.ID = "" }, "model id"},
		{"id with slash", func(m *Manifest) { m.ID = "a/b" }, "model id"},
		{"id starting with dot", func(m *Manifest) { m.ID = ".hidden" }, "model id"},
		{"id too long", func(m *Manifest) { m.ID = strings.Repeat("a", MaxIDLen+1) }, "model id"},
		{"longest id", func(m *Manifest) { m.ID = strings.Repeat("a", MaxIDLen) }, ""},
		{"id with dots and dashes", func(m *Manifest) { m.ID = "mnist-v1.2_b" }, ""},
		{"no owner", func(m *Manifest) { m.Owner = "" }, "owner"},
		{"version 0", func(m *Manifest) { m.Version = 0 }, "version"},
		{"no time", func(m *Manifest) { m.Time = time.Time{} }, "time"},
		{"bad mode", func(m *Manifest) { m.Mode = "fhe" }, "mode"},
		{"mpc one holder", func(m *Manifest) { m.Holders = hs[:1] }, "at least 2"},
		{"plain two hosts", func(m *Manifest) { m.Mode = ModePlain; m.Holders = hs[:2] }, "exactly 1"},
		{"duplicate holder", func(m *Manifest) { m.Holders = []peer.ID{hs[0], hs[0]} }, "named twice"},
		{"bad holder", func(m *Manifest) { m.Holders = []peer.ID{hs[0], "junk"} }, "holder 1"},
		{"empty input shape", func(m *Manifest) { m.InputShape = nil }, "input shape"},
		{"batch dim not first", func(m *Manifest) { m.InputShape = []int{2, -1} }, "input shape"},
		{"zero dim", func(m *Manifest) { m.OutputShape = []int{0} }, "output shape"},
		{"free output dim", func(m *Manifest) { m.OutputShape = []int{-1, 1} }, "output shape"},
		{"rank too high", func(m *Manifest) { m.InputShape = make([]int, MaxRank+1) }, "rank"},
		{"short hash", func(m *Manifest) { m.PlanHash = "abcd" }, "plan hash"},
		{"upper hex hash", func(m *Manifest) { m.PlanHash = strings.ToUpper(m.PlanHash) }, "plan hash"},
		{"empty plan", func(m *Manifest) { m.Plan = nil }, "empty plan"},
		{"plan mismatch", func(m *Manifest) { m.Plan = []byte("{}") }, "does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := testManifest("convnet", owner, hs[:2], 1)
			c.edit(m)
			err := m.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("want ErrInvalidManifest containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	sk, owner := newKey(t)
	other, _ := newKey(t)
	hs := peerIDs(t, 2)
	good := mustSeal(t, testManifest("m", owner, hs, 1), sk)

	forged := []byte(string(good))
	forged[len(forged)-1] ^= 1 // the signature is the last field

	// Change the payload after signing.
	env, err := record.UnmarshalEnvelope(good)
	if err != nil {
		t.Fatal(err)
	}
	payload := append([]byte(nil), env.RawPayload...)
	payload[len(payload)-1] ^= 1
	pbEnv := replacePayload(t, good, payload)

	bigPlan := make([]byte, MaxManifestSize)
	big := testManifest("m", owner, hs, 1)
	big.Plan, big.PlanHash = bigPlan, planHash(bigPlan)

	invalid := testManifest("m", owner, hs[:1], 1) // mpc with one holder

	cases := []struct {
		name string
		env  []byte
		want error
	}{
		{"forged signature", forged, ErrBadEnvelope},
		{"payload changed after signing", pbEnv, ErrBadEnvelope},
		{"signed by a non-owner", sealRaw(t, testManifest("m", owner, hs, 1), other), ErrSignerNotOwner},
		{"oversized", sealRaw(t, big, sk), ErrTooLarge},
		{"invalid fields", sealRaw(t, invalid, sk), ErrInvalidManifest},
		{"garbage", []byte("not an envelope"), ErrBadEnvelope},
		{"empty", nil, ErrBadEnvelope},
		{"peer record", peerRecordEnvelope(t, sk), ErrBadEnvelope},
		{"other payload type in our domain", sealRaw(t, nil, sk, &otherRecord{}), ErrBadEnvelope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.env)
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got manifest %v, err %v", c.want, m, err)
			}
		})
	}
}

func TestSealRefuses(t *testing.T) {
	sk, owner := newKey(t)
	other, _ := newKey(t)
	hs := peerIDs(t, 2)
	if _, err := Seal(testManifest("m", owner, hs, 1), other); !errors.Is(err, ErrSignerNotOwner) {
		t.Fatalf("seal with another key: %v", err)
	}
	big := testManifest("m", owner, hs, 1)
	big.Plan = make([]byte, MaxManifestSize)
	big.PlanHash = planHash(big.Plan)
	if _, err := Seal(big, sk); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("seal oversized: %v", err)
	}
	if _, err := Seal(testManifest("m", owner, hs[:1], 1), sk); !errors.Is(err, ErrInvalidManifest) {
		t.Fatalf("seal invalid: %v", err)
	}
}

func TestDecide(t *testing.T) {
	sk, owner := newKey(t)
	sk2, other := newKey(t)
	hs := peerIDs(t, 2)
	mk := func(o peer.ID, k crypto.PrivKey, v uint64, deleted bool) *entry {
		m := testManifest("m", o, hs, v)
		if deleted {
			m = &Manifest{ID: "m", Owner: o, Version: v, Time: m.Time, Deleted: true}
		}
		return &entry{m: m, env: mustSeal(t, m, k)}
	}
	v5 := mk(owner, sk, 5, false)
	v5b := mk(owner, sk, 5, false)
	v5b.m.AllowRemote = false
	v5b.env = mustSeal(t, v5b.m, sk)
	tomb7 := mk(owner, sk, 7, true)
	cases := []struct {
		name  string
		known *entry
		in    *entry
		want  verdict
		err   error
	}{
		{"unknown id", nil, v5, verdictAccept, nil},
		{"newer version", v5, mk(owner, sk, 6, false), verdictAccept, nil},
		{"identical", v5, v5, verdictDuplicate, nil},
		{"equal version, other content", v5, v5b, verdictRefuse, ErrStaleVersion},
		{"replayed older version", v5, mk(owner, sk, 4, false), verdictRefuse, ErrStaleVersion},
		{"other owner, higher version", v5, mk(other, sk2, 99, false), verdictRefuse, ErrNameTaken},
		{"other owner's tombstone", v5, mk(other, sk2, 99, true), verdictRefuse, ErrNameTaken},
		{"owner's tombstone", v5, tomb7, verdictAccept, nil},
		{"republish after tombstone", tomb7, mk(owner, sk, 8, false), verdictAccept, nil},
		{"old manifest after tombstone", tomb7, v5, verdictRefuse, ErrStaleVersion},
		{"other owner after tombstone", tomb7, mk(other, sk2, 99, false), verdictRefuse, ErrNameTaken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decide(c.known, c.in.m, c.in.env)
			if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("decide: got %v, %v; want %v, %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestNextVersion(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	cases := []struct {
		name  string
		known uint64 // 0 = no entry
		want  uint64
	}{
		{"fresh name", 0, 1_000_000},
		{"older known", 999_999, 1_000_000},
		{"equal known", 1_000_000, 1_000_001},
		{"future known", 5_000_000, 5_000_001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e *entry
			if c.known != 0 {
				e = &entry{m: &Manifest{Version: c.known}}
			}
			if got := nextVersion(e, now); got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
}

// otherRecord is a record of another payload type signed in our domain.
type otherRecord struct{}

func (*otherRecord) Domain() string                 { return ManifestDomain }
func (*otherRecord) Codec() []byte                  { return []byte("/grid/other/1") }
func (*otherRecord) MarshalRecord() ([]byte, error) { return []byte("x"), nil }
func (*otherRecord) UnmarshalRecord(b []byte) error { return nil }

// peerRecordEnvelope is a valid libp2p peer record envelope (another domain).
func peerRecordEnvelope(t testing.TB, sk crypto.PrivKey) []byte {
	t.Helper()
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id})
	rec.Seq = 1
	return sealRaw(t, nil, sk, rec)
}

// replacePayload returns env with its payload swapped, signature unchanged.
func replacePayload(t testing.TB, env, payload []byte) []byte {
	t.Helper()
	var p recordpb.Envelope
	if err := proto.Unmarshal(env, &p); err != nil {
		t.Fatal(err)
	}
	p.Payload = payload
	b, err := proto.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
