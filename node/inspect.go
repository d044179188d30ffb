package node

// Offline tools for the repo of a stopped daemon: what its datastore holds
// of each model (InspectRepo), and the two kinds of damage a crash or a bad
// disk does to stored shares (CorruptStoredShares, CutStoredShares), for
// fault tests and recovery. They use the store's own layout and checks
// (openStore), so callers never need the datastore's key names.
//
// Each function takes the repo's lock while it works, as a daemon does, so
// it fails with ErrRepoLocked on the repo of a running daemon instead of
// reading or writing under it. InspectRepo opens the datastore read-only;
// only the two damage functions write, and only what their names say.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/peer"
)

// StoredShares is what a stopped daemon's datastore holds of one model:
// this holder's part of it, as InspectRepo reads it.
type StoredShares struct {
	Owner string // the owner's peer ID
	Model string // the model's id
	// Keys is the number of datastore entries of the model: its meta, its
	// chunks and its completion marker.
	Keys int
	// Complete is true when the completion marker is stored: the upload's
	// batch committed. The daemon ignores the pieces of an incomplete one.
	Complete bool
	// Party and Version are those of the stored meta (0 if unreadable).
	Party   int
	Version uint64
	// Damaged is why the daemon refuses the complete model when it starts
	// (it wraps ErrDamaged: a checksum mismatch, a missing chunk, an
	// unreadable meta); nil when it would serve it.
	Damaged error
}

// storedKeys are the datastore keys of one model, sorted.
type storedKeys struct {
	owner, model string
	keys         []string
}

// InspectRepo lists what the datastore of a stopped daemon's repo holds of
// each model, sorted by model and owner, and whether the daemon would serve
// it. It fails on a running daemon's repo (ErrRepoLocked) and when the
// datastore does not open (e.g. a damaged table file: the daemon would move
// such a store aside and start empty).
func InspectRepo(repo string) ([]StoredShares, error) {
	ctx := context.Background()
	var out []StoredShares
	err := withRepoStore(repo, true, func(d *pebbleds.Datastore) error {
		models, err := scanStoredKeys(ctx, d)
		if err != nil {
			return err
		}
		store, err := openStore(ctx, d)
		if err != nil {
			return err
		}
		for _, m := range models {
			out = append(out, inspectModel(store, m))
		}
		return nil
	})
	return out, err
}

// inspectModel reports one model's keys as the store sees them.
func inspectModel(store *shareStore, m storedKeys) StoredShares {
	s := StoredShares{Owner: m.owner, Model: m.model, Keys: len(m.keys)}
	s.Complete = slices.ContainsFunc(m.keys, func(k string) bool { return strings.HasSuffix(k, "/done") })
	if !s.Complete {
		return s
	}
	owner, err := peer.Decode(m.owner)
	if err != nil {
		s.Damaged = fmt.Errorf("%w: owner %q: %v", ErrDamaged, m.owner, err)
		return s
	}
	sm, err := store.get(owner, m.model)
	if err != nil {
		s.Damaged = err
		return s
	}
	s.Party, s.Version = sm.meta.Party, sm.meta.Version
	return s
}

// CorruptStoredShares flips one byte in the middle of the first stored
// chunk of model's shares in a stopped daemon's repo, as a bad disk would,
// and returns the key it changed. Started again, the daemon refuses the
// model as damaged (checksum mismatch) and serves its other models.
func CorruptStoredShares(repo, model string) (string, error) {
	ctx := context.Background()
	var changed string
	err := withRepoStore(repo, false, func(d *pebbleds.Datastore) error {
		models, err := scanStoredKeys(ctx, d)
		if err != nil {
			return err
		}
		for _, m := range models {
			i := slices.IndexFunc(m.keys, func(k string) bool { return strings.Contains(k, "/c/") })
			if m.model == model && i >= 0 {
				changed = m.keys[i]
				break
			}
		}
		if changed == "" {
			return fmt.Errorf("corrupt stored shares: no chunk of %q in %s", model, repo)
		}
		key := ds.NewKey(changed)
		v, err := d.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("corrupt stored shares: %w", err)
		}
		v[len(v)/2] ^= 0x5a
		if err := d.Put(ctx, key, v); err != nil {
			return fmt.Errorf("corrupt stored shares: %w", err)
		}
		return d.Sync(ctx, key)
	})
	return changed, err
}

// CutStoredShares truncates the write-ahead log of a stopped daemon's
// datastore inside the batch that stored model's shares, as a crash or a
// full disk in the middle of that write would leave it, and returns the log
// file and the offset it was cut at. The batch must still be in the log:
// use it on a repo whose daemon was killed (SIGKILL) after the upload, since
// a clean stop moves the batch into a table file. The datastore then opens
// without any key of the model (a batch is atomic), and the daemon reports
// the model as missing once a manifest names it as a holder.
func CutStoredShares(repo, model string) (string, int64, error) {
	var file string
	var off int64
	err := withRepoLock(repo, func() error {
		// The model's keys, <prefix>/<owner>/<hex model>/..., as written.
		needle := []byte("/" + hex.EncodeToString([]byte(model)) + "/")
		logs, err := filepath.Glob(filepath.Join(repo, DatastoreDir, "*.log"))
		if err != nil {
			return fmt.Errorf("cut stored shares: %w", err)
		}
		slices.Sort(logs)
		slices.Reverse(logs) // newest first
		for _, fn := range logs {
			b, err := os.ReadFile(fn)
			if err != nil {
				return fmt.Errorf("cut stored shares: %w", err)
			}
			if i := bytes.Index(b, needle); i >= 0 {
				file, off = fn, int64(i+len(needle)/2)
				return os.Truncate(fn, off)
			}
		}
		return fmt.Errorf("cut stored shares: %q in none of the write-ahead logs %v", model, logs)
	})
	return file, off, err
}

// scanStoredKeys groups the keys of the store's namespace by model, sorted
// by model and owner.
func scanStoredKeys(ctx context.Context, d ds.Datastore) ([]storedKeys, error) {
	res, err := d.Query(ctx, query.Query{Prefix: storePrefix, KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("query store: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	byModel := map[string]*storedKeys{}
	for _, e := range entries {
		owner, rest, _ := strings.Cut(strings.TrimPrefix(e.Key, storePrefix+"/"), "/")
		hexModel, _, ok := strings.Cut(rest, "/")
		name, err := hex.DecodeString(hexModel)
		if !ok || err != nil {
			continue // not a model's key
		}
		k := owner + "/" + hexModel
		if byModel[k] == nil {
			byModel[k] = &storedKeys{owner: owner, model: string(name)}
		}
		byModel[k].keys = append(byModel[k].keys, e.Key)
	}
	out := make([]storedKeys, 0, len(byModel))
	for _, m := range byModel {
		slices.Sort(m.keys)
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b storedKeys) int {
		return cmp.Or(strings.Compare(a.model, b.model), strings.Compare(a.owner, b.owner))
	})
	return out, nil
}

// withRepoLock runs fn holding the repo's lock, as a daemon would hold it.
func withRepoLock(repo string, fn func() error) error {
	if _, err := os.Stat(filepath.Join(repo, DatastoreDir)); err != nil {
		return fmt.Errorf("repo %s: %w", repo, err)
	}
	lock, err := lockRepo(repo)
	if err != nil {
		return err
	}
	defer lock.release()
	return fn()
}

// withRepoStore runs fn on the repo's datastore, opened read-only or not,
// holding the repo's lock. It never creates a datastore: read-only, a repo
// without one holds nothing and fn is not called; else that is an error.
func withRepoStore(repo string, readOnly bool, fn func(*pebbleds.Datastore) error) error {
	return withRepoLock(repo, func() error {
		path := filepath.Join(repo, DatastoreDir)
		d, err := pebbleds.NewDatastore(path, pebbleds.WithPebbleOpts(&pebble.Options{ReadOnly: readOnly, ErrorIfNotExists: true}))
		if errors.Is(err, pebble.ErrDBDoesNotExist) && readOnly {
			return nil // the repo of a daemon that never ran: nothing to read
		}
		if err != nil {
			return fmt.Errorf("open datastore %s: %w", path, err)
		}
		err = fn(d)
		if cerr := d.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close datastore %s: %w", path, cerr)
		}
		return err
	})
}
