package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// storeModels writes each model (one weight of size words) into the repo's
// datastore as a holder's upload would, in this order, and closes pebble
// without a flush, as a killed daemon leaves it: the batches stay in the
// write-ahead log.
func storeModels(t *testing.T, repo string, owner string, size int, models ...string) {
	t.Helper()
	ctx := context.Background()
	d, err := pebbleds.NewDatastore(filepath.Join(repo, DatastoreDir))
	if err != nil {
		t.Fatal(err)
	}
	defer d.DB.Close()
	s, err := openStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range models {
		w := map[string]*tensor.Dense[uint64]{"W": tensor.New[uint64](size)}
		blob, err := encodeWeightSet(w)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(blob)
		meta := shareMeta{Model: m, Owner: owner, Mode: "mpc", Version: uint64(i + 1), PlanHash: strings.Repeat("a", 64),
			Party: 1, Holders: []string{owner, owner}, Size: len(blob), Checksum: hex.EncodeToString(sum[:])}
		if err := s.put(ctx, meta, blob, w); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInspectRepo(t *testing.T) {
	repo := t.TempDir()
	owner, err := Init(repo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := InspectRepo(repo); err != nil || len(got) != 0 {
		t.Fatalf("empty repo: %v, %v", got, err)
	}
	storeModels(t, repo, owner.String(), storeChunk/8+3, "b", "a")
	got, err := InspectRepo(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Model != "a" || got[1].Model != "b" {
		t.Fatalf("InspectRepo = %+v, want a and b", got)
	}
	for _, s := range got {
		// meta, 2 chunks, the completion marker
		if s.Owner != owner.String() || s.Keys != 4 || !s.Complete || s.Damaged != nil || s.Party != 1 {
			t.Fatalf("model %s: %+v", s.Model, s)
		}
	}
	if got[0].Version != 2 || got[1].Version != 1 {
		t.Fatalf("versions %d, %d", got[0].Version, got[1].Version)
	}

	key, err := CorruptStoredShares(repo, "b")
	if err != nil || !strings.HasSuffix(key, "/c/00000000") {
		t.Fatalf("CorruptStoredShares = %q, %v", key, err)
	}
	got, err = InspectRepo(repo)
	if err != nil || len(got) != 2 {
		t.Fatalf("after the corruption: %+v, %v", got, err)
	}
	if !errors.Is(got[1].Damaged, ErrDamaged) || !strings.Contains(got[1].Damaged.Error(), "checksum mismatch") || got[0].Damaged != nil {
		t.Fatalf("after the corruption: a %v, b %v; want b damaged only", got[0].Damaged, got[1].Damaged)
	}
	if _, err := CorruptStoredShares(repo, "c"); err == nil {
		t.Fatal("corrupted a model that is not stored")
	}

	// A running daemon's repo is refused.
	lock, err := lockRepo(repo)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"InspectRepo":         func() error { _, err := InspectRepo(repo); return err },
		"CorruptStoredShares": func() error { _, err := CorruptStoredShares(repo, "a"); return err },
		"CutStoredShares":     func() error { _, _, err := CutStoredShares(repo, "a"); return err },
	} {
		if err := f(); !errors.Is(err, ErrRepoLocked) {
			t.Errorf("%s on a locked repo: %v, want ErrRepoLocked", name, err)
		}
	}
	lock.release()
	if _, err := InspectRepo(filepath.Join(repo, "nothere")); err == nil {
		t.Fatal("inspected a missing repo")
	}
}

func TestCutStoredShares(t *testing.T) {
	repo := t.TempDir()
	owner, err := Init(repo, nil)
	if err != nil {
		t.Fatal(err)
	}
	storeModels(t, repo, owner.String(), 16, "seed", "seed2")
	file, off, err := CutStoredShares(repo, "seed2")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Size() != off || filepath.Ext(file) != ".log" {
		t.Fatalf("cut %s at %d: %v, %v", file, off, st, err)
	}
	got, err := InspectRepo(repo)
	if err != nil {
		t.Fatalf("the datastore does not open after the cut: %v", err)
	}
	if len(got) != 1 || got[0].Model != "seed" || !got[0].Complete || got[0].Damaged != nil {
		t.Fatalf("after the cut: %+v, want seed alone, intact", got)
	}
	if _, _, err := CutStoredShares(repo, "seed2"); err == nil {
		t.Fatal("cut a model no log holds")
	}
}
