package node

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// versionFixture is one version of a model to store: its meta, blob and
// weights, its weight "W" holding the version as a marker.
func versionFixture(t *testing.T, owner peer.ID, model string, version uint64) (shareMeta, []byte, map[string]*tensor.Dense[uint64]) {
	t.Helper()
	w := map[string]*tensor.Dense[uint64]{"W": {Shape: []int{2}, Data: []uint64{version, 7}}}
	blob, err := encodeWeightSet(w)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	meta := shareMeta{Model: model, Owner: owner.String(), Mode: "mpc", Version: version, PlanHash: strings.Repeat("a", 64),
		Party: 0, Holders: []string{"a", "b"}, Size: len(blob), Checksum: hex.EncodeToString(sum[:])}
	return meta, blob, w
}

func testOwner(t *testing.T) peer.ID {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// memStore opens a store on a new in-memory datastore.
func memStore(t *testing.T) (*shareStore, ds.Batching) {
	t.Helper()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	return reopenStore(t, d), d
}

// reopenStore opens a store on d, as a restarted daemon does.
func reopenStore(t *testing.T, d ds.Batching) *shareStore {
	t.Helper()
	s, err := openStore(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putVersion(t *testing.T, s *shareStore, owner peer.ID, model string, version uint64) {
	t.Helper()
	meta, blob, w := versionFixture(t, owner, model, version)
	if err := s.put(context.Background(), meta, blob, w); err != nil {
		t.Fatalf("put version %d: %v", version, err)
	}
}

// checkVersions checks the versions stored, in s and in a store reopened
// on the same datastore, and that each one's weights are its own.
func checkVersions(t *testing.T, s *shareStore, d ds.Batching, owner peer.ID, model string, want []uint64) {
	t.Helper()
	for _, st := range []*shareStore{s, reopenStore(t, d)} {
		if got := st.versions(owner, model); !slices.Equal(got, want) {
			t.Fatalf("versions %v, want %v", got, want)
		}
		for _, v := range want {
			sm, err := st.getVersion(owner, model, v)
			if err != nil || sm.weights["W"].Data[0] != v {
				t.Fatalf("getVersion %d: %v", v, err)
			}
		}
	}
}

// TestStoreKeepsTwoVersions: a new upload does not replace the stored
// version; a third upload drops the oldest version the manifest does not
// serve; prune and removeVersion drop what they name.
func TestStoreKeepsTwoVersions(t *testing.T) {
	cases := []struct {
		name   string
		served uint64 // 0: no manifest known
		want   []uint64
	}{
		{"serving the oldest", 1, []uint64{1, 3}},
		{"serving the newest", 2, []uint64{2, 3}},
		{"no manifest known", 0, []uint64{2, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, d := memStore(t)
			owner := testOwner(t)
			s.serves = func(o peer.ID, m string) (uint64, bool) { return tc.served, tc.served != 0 && o == owner }
			putVersion(t, s, owner, "m", 1)
			putVersion(t, s, owner, "m", 2)
			checkVersions(t, s, d, owner, "m", []uint64{1, 2})
			if sm, err := s.get(owner, "m"); err != nil || sm.meta.Version != 2 {
				t.Fatalf("get: %v %+v", err, sm)
			}
			putVersion(t, s, owner, "m", 3)
			checkVersions(t, s, d, owner, "m", tc.want)
			if _, err := s.getVersion(owner, "m", 9); !errors.Is(err, ErrUnknownModel) {
				t.Fatalf("getVersion of a version not stored: %v", err)
			}
		})
	}
}

func TestStorePruneAndRemoveVersion(t *testing.T) {
	ctx := context.Background()
	s, d := memStore(t)
	owner := testOwner(t)
	putVersion(t, s, owner, "m", 4)
	putVersion(t, s, owner, "m", 5)
	putVersion(t, s, owner, "other", 1)
	if err := s.prune(ctx, owner, "m", 5); err != nil {
		t.Fatal(err)
	}
	checkVersions(t, s, d, owner, "m", []uint64{5})
	checkVersions(t, s, d, owner, "other", []uint64{1})
	if err := s.removeVersion(ctx, owner, "m", 4); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("remove a version not stored: %v", err)
	}
	if err := s.removeVersion(ctx, owner, "m", 5); err != nil {
		t.Fatal(err)
	}
	checkVersions(t, s, d, owner, "m", nil)
	if keys := storeKeys(t, d, modelPrefix(owner, "m")); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
}

func storeKeys(t *testing.T, d ds.Datastore, prefix ds.Key) []string {
	t.Helper()
	res, err := d.Query(context.Background(), query.Query{Prefix: prefix.String(), KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

// putLegacy writes a version in the single-version layout of earlier
// releases: meta, chunks and marker directly under the model's prefix.
func putLegacy(t *testing.T, d ds.Datastore, owner peer.ID, model string, version uint64) {
	t.Helper()
	ctx := context.Background()
	meta, blob, _ := versionFixture(t, owner, model, version)
	meta.Chunks = 1
	mb, err := json.Marshal(&meta)
	if err != nil {
		t.Fatal(err)
	}
	prefix := modelPrefix(owner, model)
	for k, v := range map[string][]byte{"meta": mb, "c/00000000": blob, "done": []byte(meta.Checksum)} {
		if err := d.Put(ctx, ds.NewKey(prefix.String()+"/"+k), v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreReadsLegacyLayout: a repo written by the single-version store
// is read; a new upload is kept next to it, and pruning the legacy version
// deletes its keys only.
func TestStoreReadsLegacyLayout(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	owner := testOwner(t)
	putLegacy(t, d, owner, "m", 7)
	s := reopenStore(t, d)
	if errs := s.damaged(); len(errs) != 0 {
		t.Fatalf("legacy version damaged: %v", errs)
	}
	checkVersions(t, s, d, owner, "m", []uint64{7})
	putVersion(t, s, owner, "m", 8)
	checkVersions(t, s, d, owner, "m", []uint64{7, 8})
	if err := s.prune(ctx, owner, "m", 8); err != nil {
		t.Fatal(err)
	}
	checkVersions(t, s, d, owner, "m", []uint64{8})
	versioned := modelPrefix(owner, "m").ChildString("v").String() + "/"
	for _, k := range storeKeys(t, d, modelPrefix(owner, "m")) {
		if !strings.HasPrefix(k, versioned) {
			t.Fatalf("legacy key %s left after prune", k)
		}
	}
	// A damaged legacy version is refused, not served, and names the model.
	putLegacy(t, d, owner, "n", 3)
	if err := d.Put(ctx, modelPrefix(owner, "n").ChildString("done"), []byte("bad")); err != nil {
		t.Fatal(err)
	}
	if _, err := reopenStore(t, d).getVersion(owner, "n", 3); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged legacy version: %v", err)
	}
}

// TestStoreVersionKeyMismatch: a meta whose version differs from the key
// it is stored under is damage, not another version.
func TestStoreVersionKeyMismatch(t *testing.T) {
	ctx := context.Background()
	s, d := memStore(t)
	owner := testOwner(t)
	putVersion(t, s, owner, "m", 2)
	meta, _, _ := versionFixture(t, owner, "m", 2)
	meta.Version, meta.Chunks = 5, 1
	mb, _ := json.Marshal(&meta)
	if err := d.Put(ctx, versionPrefix(owner, "m", 2).ChildString("meta"), mb); err != nil {
		t.Fatal(err)
	}
	if _, err := reopenStore(t, d).getVersion(owner, "m", 2); !errors.Is(err, ErrDamaged) {
		t.Fatalf("mismatched version: %v", err)
	}
}
