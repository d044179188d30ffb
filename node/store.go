package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// storePrefix is the datastore namespace of stored shares.
const storePrefix = "/node/shares"

// storeChunk is the size of the datastore values a blob is cut into.
const storeChunk = 1 << 20

// shareMeta describes one stored model (one holder's part of it).
type shareMeta struct {
	Model    string   `json:"model"`
	Owner    string   `json:"owner"`
	Mode     string   `json:"mode"` // "mpc" or "plain"
	Version  uint64   `json:"version"`
	PlanHash string   `json:"plan_hash"`
	Party    int      `json:"party"`
	Holders  []string `json:"holders"`
	Size     int      `json:"size"`
	Checksum string   `json:"checksum"` // hex SHA-256 of the blob
	Chunks   int      `json:"chunks"`
}

// storedModel is one stored version of a model in the store's index: its
// meta and its weights (shares or plaintext bit patterns), or the damage
// found when loading it.
type storedModel struct {
	meta    shareMeta
	weights map[string]*tensor.Dense[uint64]
	damaged error
	// legacy marks a version stored by the single-version layout (its keys
	// directly under the model's prefix), read as it is and never written.
	legacy bool
}

// maxVersions is how many versions of one model a holder keeps: the one
// its accepted manifest serves and one newer upload staged for the next.
const maxVersions = 2

// shareStore keeps the models this node holds in the datastore, each
// version written in one batch with a completion marker, so a version is
// either fully there or absent, and verified by checksum when loaded.
//
// Layout: <storePrefix>/<owner>/<hex model>/v/<version, 20 digits>/ holds a
// version's meta, chunks c/<8 digits> and completion marker done. The
// single-version layout of earlier releases (the same keys directly under
// <owner>/<hex model>/) is read as one more version.
type shareStore struct {
	ds ds.Batching
	// serves, if set (by the node before it serves uploads), returns the
	// shares version the accepted manifest of owner's model serves: put
	// never drops it.
	serves func(owner peer.ID, model string) (uint64, bool)

	wmu    sync.Mutex // serializes writes (put, remove, prune)
	mu     sync.RWMutex
	models map[string][]*storedModel // by storeKey(owner, model), by version ascending
}

func storeKey(owner peer.ID, model string) string {
	return owner.String() + "/" + hex.EncodeToString([]byte(model))
}

func modelPrefix(owner peer.ID, model string) ds.Key {
	return ds.NewKey(storePrefix + "/" + storeKey(owner, model))
}

// versionPrefix is the prefix of the keys of one version of a model.
func versionPrefix(owner peer.ID, model string, version uint64) ds.Key {
	return modelPrefix(owner, model).ChildString("v").ChildString(fmt.Sprintf("%020d", version))
}

// storedParts are the datastore values of one stored version.
type storedParts struct {
	owner, hexModel string
	version         uint64 // from the key; 0 for the legacy layout
	legacy          bool
	meta, done      []byte
	chunks          map[string][]byte
}

// parseStoreKey splits a store key into its version's group and the rest:
// legacy keys <owner>/<hex>/{meta,done,c/N}, versioned keys
// <owner>/<hex>/v/<version>/{meta,done,c/N}. ok is false for a key of
// neither form.
func parseStoreKey(key string) (p storedParts, rest []string, ok bool) {
	fields := strings.Split(strings.TrimPrefix(key, storePrefix+"/"), "/")
	if len(fields) < 3 {
		return p, nil, false
	}
	p.owner, p.hexModel, rest = fields[0], fields[1], fields[2:]
	if rest[0] != "v" {
		p.legacy = true
		return p, rest, true
	}
	if len(rest) < 3 {
		return p, nil, false
	}
	v, err := strconv.ParseUint(rest[1], 10, 64)
	if err != nil {
		return p, nil, false
	}
	p.version = v
	return p, rest[2:], true
}

// openStore loads and verifies every stored version. Damaged versions are
// kept in the index with their damage (reported by damaged()) and refused.
func openStore(ctx context.Context, d ds.Batching) (*shareStore, error) {
	s := &shareStore{ds: d, models: map[string][]*storedModel{}}
	res, err := d.Query(ctx, query.Query{Prefix: storePrefix})
	if err != nil {
		return nil, fmt.Errorf("query store: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	byVersion := map[string]*storedParts{}
	for _, e := range entries {
		key, rest, ok := parseStoreKey(e.Key)
		if !ok {
			continue
		}
		k := fmt.Sprintf("%s/%s/%t/%d", key.owner, key.hexModel, key.legacy, key.version)
		p := byVersion[k]
		if p == nil {
			key.chunks = map[string][]byte{}
			p = &key
			byVersion[k] = p
		}
		switch {
		case rest[0] == "meta" && len(rest) == 1:
			p.meta = e.Value
		case rest[0] == "done" && len(rest) == 1:
			p.done = e.Value
		case rest[0] == "c" && len(rest) == 2:
			p.chunks[rest[1]] = e.Value
		}
	}
	for _, p := range byVersion {
		if p.done == nil {
			// An upload that never committed cannot exist (one batch), but a
			// truncated store could leave pieces: they are not a model.
			continue
		}
		k := p.owner + "/" + p.hexModel
		s.models[k] = append(s.models[k], loadVersion(p))
	}
	for _, vs := range s.models {
		sortVersions(vs)
	}
	return s, nil
}

// loadVersion decodes and verifies one stored version.
func loadVersion(p *storedParts) *storedModel {
	m := &storedModel{legacy: p.legacy}
	k := p.owner + "/" + p.hexModel
	if err := json.Unmarshal(p.meta, &m.meta); err != nil {
		m.damaged = fmt.Errorf("%w: meta of %s: %v", ErrDamaged, k, err)
		name, _ := hex.DecodeString(p.hexModel)
		m.meta = shareMeta{Model: string(name), Owner: p.owner, Version: p.version}
		return m
	}
	blob, err := joinChunks(p.chunks, m.meta.Chunks)
	if err == nil {
		err = verifyBlob(blob, m.meta)
	}
	if err == nil && !p.legacy && m.meta.Version != p.version {
		err = fmt.Errorf("meta says version %d, stored as version %d", m.meta.Version, p.version)
		m.meta.Version = p.version // indexed where it is stored
	}
	if err == nil {
		m.weights, err = decodeWeightSet(blob)
	}
	if err != nil {
		m.damaged = fmt.Errorf("%w: model %q: %v", ErrDamaged, m.meta.Model, err)
	}
	if string(p.done) != m.meta.Checksum && m.damaged == nil {
		m.damaged = fmt.Errorf("%w: model %q: completion marker does not match its meta", ErrDamaged, m.meta.Model)
	}
	return m
}

func sortVersions(vs []*storedModel) {
	slices.SortStableFunc(vs, func(a, b *storedModel) int { return cmp.Compare(a.meta.Version, b.meta.Version) })
}

func joinChunks(chunks map[string][]byte, n int) ([]byte, error) {
	if n < 0 || len(chunks) != n {
		return nil, fmt.Errorf("%d chunks stored, meta says %d", len(chunks), n)
	}
	var buf bytes.Buffer
	for i := range n {
		c, ok := chunks[fmt.Sprintf("%08d", i)]
		if !ok {
			return nil, fmt.Errorf("chunk %d missing", i)
		}
		buf.Write(c)
	}
	return buf.Bytes(), nil
}

func verifyBlob(blob []byte, m shareMeta) error {
	if len(blob) != m.Size {
		return fmt.Errorf("blob is %d bytes, meta says %d", len(blob), m.Size)
	}
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != m.Checksum {
		return fmt.Errorf("checksum mismatch")
	}
	return nil
}

// decodeWeightSet decodes a blob into tensors by name.
func decodeWeightSet(blob []byte) (map[string]*tensor.Dense[uint64], error) {
	var set pb.WeightSet
	if err := proto.Unmarshal(blob, &set); err != nil {
		return nil, fmt.Errorf("decode weight set: %w", err)
	}
	out := make(map[string]*tensor.Dense[uint64], len(set.Tensors))
	for _, t := range set.Tensors {
		if _, dup := out[t.Name]; dup {
			return nil, fmt.Errorf("weight %q twice", t.Name)
		}
		d, err := decodeWords(t)
		if err != nil {
			return nil, err
		}
		out[t.Name] = d
	}
	return out, nil
}

// encodeWeightSet encodes tensors by name, sorted, into a blob.
func encodeWeightSet(w map[string]*tensor.Dense[uint64]) ([]byte, error) {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	set := &pb.WeightSet{}
	for _, n := range names {
		set.Tensors = append(set.Tensors, encodeWords(n, w[n]))
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(set)
}

// put stores a verified upload as a new version of its model, atomically:
// one batch writes its meta, chunks and completion marker and deletes
// what it replaces, the same version stored before and, when the model
// already has maxVersions versions, the oldest one its accepted manifest
// does not serve (serves). The other versions stay, so the version the
// manifest serves answers while a newer one is uploaded.
func (s *shareStore) put(ctx context.Context, meta shareMeta, blob []byte, weights map[string]*tensor.Dense[uint64]) error {
	owner, err := peer.Decode(meta.Owner)
	if err != nil {
		return fmt.Errorf("store: owner %q: %w", meta.Owner, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	drop := s.replaced(owner, meta.Model, meta.Version)
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("store: batch: %w", err)
	}
	for _, sm := range drop {
		if err := s.deleteVersion(ctx, b, owner, sm); err != nil {
			return err
		}
	}
	prefix := versionPrefix(owner, meta.Model, meta.Version)
	meta.Chunks = (len(blob) + storeChunk - 1) / storeChunk
	if err := putBlob(ctx, b, prefix, &meta, blob); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit %q: %w", meta.Model, err)
	}
	if err := s.ds.Sync(ctx, modelPrefix(owner, meta.Model)); err != nil {
		return fmt.Errorf("store: sync %q: %w", meta.Model, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := storeKey(owner, meta.Model)
	vs := slices.DeleteFunc(slices.Clone(s.models[k]), func(sm *storedModel) bool { return slices.Contains(drop, sm) })
	vs = append(vs, &storedModel{meta: meta, weights: weights})
	sortVersions(vs)
	s.models[k] = vs
	return nil
}

// putBlob adds one version's meta, chunks and completion marker to b.
func putBlob(ctx context.Context, b ds.Batch, prefix ds.Key, meta *shareMeta, blob []byte) error {
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("store: encode meta: %w", err)
	}
	if err := b.Put(ctx, prefix.ChildString("meta"), mb); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for i := 0; i < meta.Chunks; i++ {
		end := min((i+1)*storeChunk, len(blob))
		if err := b.Put(ctx, prefix.ChildString("c").ChildString(fmt.Sprintf("%08d", i)), blob[i*storeChunk:end]); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if err := b.Put(ctx, prefix.ChildString("done"), []byte(meta.Checksum)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// replaced returns the stored versions a new upload of version replaces:
// that same version, and the oldest version the accepted manifest does not
// serve while the model would otherwise keep more than maxVersions.
func (s *shareStore) replaced(owner peer.ID, model string, version uint64) []*storedModel {
	s.mu.RLock()
	vs := slices.Clone(s.models[storeKey(owner, model)])
	s.mu.RUnlock()
	var drop, keep []*storedModel
	for _, sm := range vs {
		if sm.meta.Version == version {
			drop = append(drop, sm)
		} else {
			keep = append(keep, sm)
		}
	}
	served, known := uint64(0), false
	if s.serves != nil {
		served, known = s.serves(owner, model)
	}
	for len(keep) >= maxVersions {
		i := max(slices.IndexFunc(keep, func(sm *storedModel) bool { return !known || sm.meta.Version != served }), 0)
		drop = append(drop, keep[i])
		keep = slices.Delete(keep, i, i+1)
	}
	return drop
}

// deleteVersion adds the deletion of one stored version's keys to b.
func (s *shareStore) deleteVersion(ctx context.Context, b ds.Batch, owner peer.ID, sm *storedModel) error {
	if !sm.legacy {
		return s.deleteKeys(ctx, b, versionPrefix(owner, sm.meta.Model, sm.meta.Version), nil)
	}
	// The legacy layout's keys are the model's keys outside v/.
	prefix := modelPrefix(owner, sm.meta.Model)
	versioned := prefix.ChildString("v").String() + "/"
	return s.deleteKeys(ctx, b, prefix, func(k string) bool { return !strings.HasPrefix(k, versioned) })
}

// deleteKeys adds the deletion of the keys under prefix (those keep
// accepts, if set) to b.
func (s *shareStore) deleteKeys(ctx context.Context, b ds.Batch, prefix ds.Key, keep func(string) bool) error {
	res, err := s.ds.Query(ctx, query.Query{Prefix: prefix.String(), KeysOnly: true})
	if err != nil {
		return fmt.Errorf("store: query %s: %w", prefix, err)
	}
	entries, err := res.Rest()
	if err != nil {
		return fmt.Errorf("store: query %s: %w", prefix, err)
	}
	for _, e := range entries {
		if keep != nil && !keep(e.Key) {
			continue
		}
		if err := b.Delete(ctx, ds.NewKey(e.Key)); err != nil {
			return fmt.Errorf("store: delete %s: %w", e.Key, err)
		}
	}
	return nil
}

// remove drops every version of a model (all its keys, in one batch).
func (s *shareStore) remove(ctx context.Context, owner peer.ID, model string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("store: batch: %w", err)
	}
	if err := s.deleteKeys(ctx, b, modelPrefix(owner, model), nil); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("store: remove %q: %w", model, err)
	}
	s.mu.Lock()
	delete(s.models, storeKey(owner, model))
	s.mu.Unlock()
	return nil
}

// prune drops every stored version of a model but keep (one batch).
func (s *shareStore) prune(ctx context.Context, owner peer.ID, model string, keep uint64) error {
	_, err := s.dropVersions(ctx, owner, model, func(v uint64) bool { return v != keep })
	return err
}

// removeVersion drops one stored version of a model, or returns
// ErrUnknownModel when it is not stored.
func (s *shareStore) removeVersion(ctx context.Context, owner peer.ID, model string, version uint64) error {
	n, err := s.dropVersions(ctx, owner, model, func(v uint64) bool { return v == version })
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: %q version %d is not held here", ErrUnknownModel, model, version)
	}
	return err
}

// dropVersions drops the stored versions of a model that drop selects, in
// one batch, and returns how many.
func (s *shareStore) dropVersions(ctx context.Context, owner peer.ID, model string, drop func(uint64) bool) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	k := storeKey(owner, model)
	s.mu.RLock()
	vs := slices.Clone(s.models[k])
	s.mu.RUnlock()
	var gone []*storedModel
	for _, sm := range vs {
		if drop(sm.meta.Version) {
			gone = append(gone, sm)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: batch: %w", err)
	}
	for _, sm := range gone {
		if err := s.deleteVersion(ctx, b, owner, sm); err != nil {
			return 0, err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: drop versions of %q: %w", model, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	left := slices.DeleteFunc(slices.Clone(s.models[k]), func(sm *storedModel) bool { return slices.Contains(gone, sm) })
	if len(left) == 0 {
		delete(s.models, k)
	} else {
		s.models[k] = left
	}
	return len(gone), nil
}

// get returns the newest stored version of owner's model, or
// ErrUnknownModel, or its damage.
func (s *shareStore) get(owner peer.ID, model string) (*storedModel, error) {
	s.mu.RLock()
	vs := s.models[storeKey(owner, model)]
	s.mu.RUnlock()
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %q is not held here", ErrUnknownModel, model)
	}
	m := vs[len(vs)-1]
	if m.damaged != nil {
		return nil, m.damaged
	}
	return m, nil
}

// getVersion returns one stored version of owner's model (the one a
// manifest serves: Manifest.Shares()), or ErrUnknownModel, or its damage.
func (s *shareStore) getVersion(owner peer.ID, model string, sharesVersion uint64) (*storedModel, error) {
	s.mu.RLock()
	vs := s.models[storeKey(owner, model)]
	s.mu.RUnlock()
	i := slices.IndexFunc(vs, func(sm *storedModel) bool { return sm.meta.Version == sharesVersion })
	if i < 0 {
		return nil, fmt.Errorf("%w: %q version %d is not held here", ErrUnknownModel, model, sharesVersion)
	}
	if vs[i].damaged != nil {
		return nil, vs[i].damaged
	}
	return vs[i], nil
}

// versions returns the versions of owner's model stored here, ascending,
// damaged ones included.
func (s *shareStore) versions(owner peer.ID, model string) []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []uint64
	for _, sm := range s.models[storeKey(owner, model)] {
		out = append(out, sm.meta.Version)
	}
	return out
}

// list returns every stored version of every model, damaged ones
// included, by model, owner and version.
func (s *shareStore) list() []*storedModel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*storedModel
	for _, vs := range s.models {
		out = append(out, vs...)
	}
	slices.SortFunc(out, func(a, b *storedModel) int {
		return cmp.Or(strings.Compare(a.meta.Model, b.meta.Model), strings.Compare(a.meta.Owner, b.meta.Owner),
			cmp.Compare(a.meta.Version, b.meta.Version))
	})
	return out
}

// damaged returns the damage found at load, one error per damaged version.
func (s *shareStore) damaged() []error {
	var errs []error
	for _, m := range s.list() {
		if m.damaged != nil {
			errs = append(errs, m.damaged)
		}
	}
	return errs
}

var errNoStore = errors.New("no store")
