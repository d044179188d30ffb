package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// maxRegistryEntries caps the number of model IDs (live or tombstoned) a
// node keeps, so that a peer signing junk manifests under fresh names cannot
// grow a node's memory without bound.
const maxRegistryEntries = 10000

var (
	errRegistryFull = errors.New("manifest registry full")
	errBadKey       = errors.New("dht key does not match manifest id")
)

// RegistryPrefix is the datastore key under which the registry persists
// each model's newest signed envelope (tombstones included), at
// RegistryPrefix/<id>. The DHT's records live under /grid/discovery/dht.
const RegistryPrefix = "/grid/discovery/manifests"

var registryPrefix = datastore.NewKey(RegistryPrefix)

// entry is one model ID's newest known owner-signed manifest, its signed
// envelope and the chain of repair records accepted on top of it. Entries
// are never changed once stored: an update stores a new one.
type entry struct {
	m     *Manifest // as the owner signed it
	env   []byte
	chain []link    // repairs with seq 1, 2, ... on top of m
	cur   *Manifest // m amended by chain; nil when chain is empty
}

// registry is the node's view of the network's models: for each ID, the
// newest verified manifest (tombstones included). It enforces the update
// rules of decide and persists every accepted envelope when ds is set.
type registry struct {
	mu      sync.RWMutex
	entries map[string]*entry
	ds      datastore.Datastore // nil: memory only
	dig     []byte              // cached digest, nil when stale
}

func newRegistry(ds datastore.Datastore) *registry {
	return &registry{entries: make(map[string]*entry), ds: ds}
}

// verdict is what decide concludes about an incoming manifest.
type verdict int

const (
	verdictRefuse    verdict = iota // refused: the error says why
	verdictAccept                   // newer: replace the entry
	verdictDuplicate                // byte-identical to the known entry: nothing to do
)

// decide applies the update rules to an incoming manifest m (already
// verified by Open) with envelope env, given the known entry (nil if none):
//  1. an unknown ID is accepted (first signer owns the name, as far as this
//     node knows);
//  2. an ID known under another owner is refused (ErrNameTaken), tombstones
//     included: a name stays with its owner after Unpublish;
//  3. an older version is refused (ErrStaleVersion: a replay);
//  4. an equal version is a duplicate if byte-identical, else refused
//     (ErrStaleVersion: two different manifests with one version);
//  5. a newer version is accepted.
func decide(known *entry, m *Manifest, env []byte) (verdict, error) {
	switch {
	case known == nil:
		return verdictAccept, nil
	case m.Owner != known.m.Owner:
		return verdictRefuse, fmt.Errorf("model %q owned by %s, manifest signed by %s: %w", m.ID, known.m.Owner, m.Owner, ErrNameTaken)
	case m.Version < known.m.Version:
		return verdictRefuse, fmt.Errorf("model %q version %d, known version %d: %w", m.ID, m.Version, known.m.Version, ErrStaleVersion)
	case m.Version == known.m.Version:
		if bytes.Equal(env, known.env) {
			return verdictDuplicate, nil
		}
		return verdictRefuse, fmt.Errorf("model %q: a different manifest with the known version %d: %w", m.ID, m.Version, ErrStaleVersion)
	default:
		return verdictAccept, nil
	}
}

// check tells what apply would do, without changing anything.
func (r *registry) check(m *Manifest, env []byte) (verdict, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.checkLocked(m, env)
}

func (r *registry) checkLocked(m *Manifest, env []byte) (verdict, error) {
	known := r.entries[m.ID]
	v, err := decide(known, m, env)
	if v == verdictAccept && known == nil && len(r.entries) >= maxRegistryEntries {
		return verdictRefuse, fmt.Errorf("model %q: %d models known: %w", m.ID, len(r.entries), errRegistryFull)
	}
	return v, err
}

// apply stores m if decide accepts it, persisting env first when the
// registry has a datastore. It returns the verdict.
func (r *registry) apply(ctx context.Context, m *Manifest, env []byte) (verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.checkLocked(m, env)
	if v != verdictAccept {
		return v, err
	}
	if r.ds != nil {
		if err := r.ds.Put(ctx, registryPrefix.ChildString(m.ID), env); err != nil {
			return verdictRefuse, fmt.Errorf("persist manifest %q: %w", m.ID, err)
		}
		if known := r.entries[m.ID]; known != nil && len(known.chain) > 0 {
			// The owner's new version drops the repairs of the old one. A
			// chain left by a failed delete no longer applies (its base is
			// older) and is dropped at the next load.
			_ = r.ds.Delete(ctx, repairPrefix.ChildString(m.ID))
		}
	}
	r.entries[m.ID] = &entry{m: m, env: env}
	r.dig = nil
	return verdictAccept, nil
}

// digest is a sha256 over the catalog: for each ID in order, the ID, the
// sha256 of its envelope and the sha256 of each of its repair records. Two nodes with equal digests hold the same
// envelopes, so a catalog pull between them can be skipped.
func (r *registry) digest() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dig != nil {
		return r.dig
	}
	ids := make([]string, 0, len(r.entries))
	for id := range r.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		e := r.entries[id]
		sum := sha256.Sum256(e.env)
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write(sum[:])
		for _, l := range e.chain {
			sum := sha256.Sum256(l.raw)
			h.Write(sum[:])
		}
	}
	r.dig = h.Sum(nil)
	return r.dig
}

// get returns the entry for id, or nil.
func (r *registry) get(id string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries[id]
}

// all returns every entry, tombstones included, sorted by ID.
func (r *registry) all() []*entry {
	r.mu.RLock()
	out := make([]*entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].m.ID < out[j].m.ID })
	return out
}

// stored is one envelope read back from the datastore.
type stored struct {
	key string
	env []byte
}

// loadStored reads every value persisted under prefix (registryPrefix:
// envelopes, repairPrefix: repair chains). Verifying them is the caller's
// job (Discovery.load), so that refusals are logged and counted.
func (r *registry) loadStored(ctx context.Context, prefix datastore.Key) ([]stored, error) {
	if r.ds == nil {
		return nil, nil
	}
	res, err := r.ds.Query(ctx, query.Query{Prefix: prefix.String()})
	if err != nil {
		return nil, fmt.Errorf("query stored manifests: %w", err)
	}
	defer res.Close()
	var out []stored
	for i := 0; ; i++ {
		e, ok := res.NextSync()
		if !ok {
			break
		}
		if e.Error != nil {
			return out, fmt.Errorf("read stored manifests: %w", e.Error)
		}
		if i >= maxRegistryEntries {
			return out, fmt.Errorf("read stored manifests: more than %d: %w", maxRegistryEntries, errRegistryFull)
		}
		out = append(out, stored{key: e.Key, env: e.Value})
	}
	return out, nil
}
