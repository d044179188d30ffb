package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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

// storedModel is a model in the store's index: its meta and its weights
// (shares or plaintext bit patterns), or the damage found when loading it.
type storedModel struct {
	meta    shareMeta
	weights map[string]*tensor.Dense[uint64]
	damaged error
}

// shareStore keeps the models this node holds in the datastore, each
// written in one batch with a completion marker, so a model is either fully
// there or absent, and verified by checksum when loaded.
type shareStore struct {
	ds ds.Batching

	mu     sync.RWMutex
	models map[string]*storedModel // by storeKey(owner, model)
}

func storeKey(owner peer.ID, model string) string {
	return owner.String() + "/" + hex.EncodeToString([]byte(model))
}

func modelPrefix(owner peer.ID, model string) ds.Key {
	return ds.NewKey(storePrefix + "/" + storeKey(owner, model))
}

// openStore loads and verifies every stored model. Damaged models are kept
// in the index with their damage (reported by damaged()) and are refused.
func openStore(ctx context.Context, d ds.Batching) (*shareStore, error) {
	s := &shareStore{ds: d, models: map[string]*storedModel{}}
	res, err := d.Query(ctx, query.Query{Prefix: storePrefix})
	if err != nil {
		return nil, fmt.Errorf("query store: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	type parts struct {
		meta   []byte
		done   []byte
		chunks map[string][]byte
	}
	byModel := map[string]*parts{}
	for _, e := range entries {
		rest := strings.TrimPrefix(e.Key, storePrefix+"/")
		fields := strings.Split(rest, "/")
		if len(fields) < 3 {
			continue
		}
		k := fields[0] + "/" + fields[1]
		p := byModel[k]
		if p == nil {
			p = &parts{chunks: map[string][]byte{}}
			byModel[k] = p
		}
		switch {
		case fields[2] == "meta" && len(fields) == 3:
			p.meta = e.Value
		case fields[2] == "done" && len(fields) == 3:
			p.done = e.Value
		case fields[2] == "c" && len(fields) == 4:
			p.chunks[fields[3]] = e.Value
		}
	}
	for k, p := range byModel {
		if p.done == nil {
			// An upload that never committed cannot exist (one batch), but a
			// truncated store could leave pieces: they are not a model.
			continue
		}
		m := &storedModel{}
		if err := json.Unmarshal(p.meta, &m.meta); err != nil {
			m.damaged = fmt.Errorf("%w: meta of %s: %v", ErrDamaged, k, err)
			m.meta.Model = k
			s.models[k] = m
			continue
		}
		blob, err := joinChunks(p.chunks, m.meta.Chunks)
		if err == nil {
			err = verifyBlob(blob, m.meta)
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
		s.models[k] = m
	}
	return s, nil
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

// put stores a verified upload atomically: one batch deletes the model's
// previous keys and writes meta, chunks and the completion marker.
func (s *shareStore) put(ctx context.Context, meta shareMeta, blob []byte, weights map[string]*tensor.Dense[uint64]) error {
	owner, err := peer.Decode(meta.Owner)
	if err != nil {
		return fmt.Errorf("store: owner %q: %w", meta.Owner, err)
	}
	prefix := modelPrefix(owner, meta.Model)
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("store: batch: %w", err)
	}
	if err := s.deleteKeys(ctx, b, prefix); err != nil {
		return err
	}
	meta.Chunks = (len(blob) + storeChunk - 1) / storeChunk
	mb, err := json.Marshal(&meta)
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
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit %q: %w", meta.Model, err)
	}
	if err := s.ds.Sync(ctx, prefix); err != nil {
		return fmt.Errorf("store: sync %q: %w", meta.Model, err)
	}
	s.mu.Lock()
	s.models[storeKey(owner, meta.Model)] = &storedModel{meta: meta, weights: weights}
	s.mu.Unlock()
	return nil
}

func (s *shareStore) deleteKeys(ctx context.Context, b ds.Batch, prefix ds.Key) error {
	res, err := s.ds.Query(ctx, query.Query{Prefix: prefix.String(), KeysOnly: true})
	if err != nil {
		return fmt.Errorf("store: query %s: %w", prefix, err)
	}
	entries, err := res.Rest()
	if err != nil {
		return fmt.Errorf("store: query %s: %w", prefix, err)
	}
	for _, e := range entries {
		if err := b.Delete(ctx, ds.NewKey(e.Key)); err != nil {
			return fmt.Errorf("store: delete %s: %w", e.Key, err)
		}
	}
	return nil
}

// remove drops a model (all its keys, in one batch).
func (s *shareStore) remove(ctx context.Context, owner peer.ID, model string) error {
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("store: batch: %w", err)
	}
	if err := s.deleteKeys(ctx, b, modelPrefix(owner, model)); err != nil {
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

// get returns the stored model of owner, or ErrUnknownModel, or its damage.
func (s *shareStore) get(owner peer.ID, model string) (*storedModel, error) {
	s.mu.RLock()
	m := s.models[storeKey(owner, model)]
	s.mu.RUnlock()
	if m == nil {
		return nil, fmt.Errorf("%w: %q is not held here", ErrUnknownModel, model)
	}
	if m.damaged != nil {
		return nil, m.damaged
	}
	return m, nil
}

// list returns the metas of every stored model, damaged ones included.
func (s *shareStore) list() []*storedModel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*storedModel, 0, len(s.models))
	for _, m := range s.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.Model < out[j].meta.Model })
	return out
}

// damaged returns the damage found at load, one error per damaged model.
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
