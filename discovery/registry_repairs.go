package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-datastore"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// This file holds the registry's repair chains: the rules for an incoming
// repair record (decideRepair), applying and persisting it, and the
// effective manifest every reader sees.

// maxRepairChain caps the repairs a registry keeps on top of one owner
// manifest; the owner's next version starts a new chain.
const maxRepairChain = 64

// RepairPrefix is the datastore key under which the registry persists each
// model's repair chain, at RepairPrefix/<id>: a pb.SyncEntry whose Repairs
// are the records in sequence order (no envelope).
const RepairPrefix = "/grid/discovery/repairs"

var repairPrefix = datastore.NewKey(RepairPrefix)

var (
	// errRepairBehind: the record amends an owner manifest or a repair
	// this node does not have yet. The sender is ahead, not lying; a
	// catalog pull catches up.
	errRepairBehind = errors.New("repair record ahead of the known manifest")
	// errRepairConflict: a different validly signed record with the same
	// seq was accepted first (the first accepted wins).
	errRepairConflict = errors.New("conflicting repair record")
	// errChainFull: the chain already holds maxRepairChain records.
	errChainFull = errors.New("repair chain full")
)

// link is one accepted repair record: decoded and as received.
type link struct {
	r   *Repair
	raw []byte
}

// eff returns the entry's effective manifest: the owner's amended by the
// chain.
func (e *entry) eff() *Manifest {
	if e.cur != nil {
		return e.cur
	}
	return e.m
}

// at returns the manifest after the first n records of the chain, sharing
// its slices with the entry's manifests: read only.
func (e *entry) at(n int) *Manifest {
	if n == 0 {
		return e.m
	}
	return shallowAmend(e.m, e.chain[n-1].r)
}

// shallowAmend is Amend without Verify and without a deep copy: a copy of
// m sharing its slices, with r's holders, shares version and seq. Read
// only; for checking the records after r.
func shallowAmend(m *Manifest, r *Repair) *Manifest {
	c := *m
	c.Holders, c.SharesVersion, c.RepairSeq = r.Holders, r.SharesVersion, r.Seq
	return &c
}

// raws returns the chain's records as received, in sequence order.
func (e *entry) raws() [][]byte {
	out := make([][]byte, len(e.chain))
	for i, l := range e.chain {
		out[i] = l.raw
	}
	return out
}

// decideRepair applies the chain rules to a decoded record r (raw as
// received) given the model's entry (nil if unknown). On acceptance it
// returns the amended manifest.
//  1. unknown model, newer base or a gap in seq: errRepairBehind;
//  2. another owner: ErrBadRepair; an older base: ErrStaleVersion (the
//     owner has superseded it);
//  3. a seq already in the chain: a duplicate if byte-identical, else
//     errRepairConflict if its signatures verify, else ErrBadRepair;
//  4. the next seq: accepted if it verifies against the effective
//     manifest (Verify) and the chain has room.
func decideRepair(e *entry, r *Repair, raw []byte) (verdict, *Manifest, error) {
	n := uint64(0)
	if e != nil {
		n = uint64(len(e.chain))
	}
	switch {
	case e == nil:
		return verdictRefuse, nil, fmt.Errorf("repair of %q seq %d: model unknown: %w", r.Model, r.Seq, errRepairBehind)
	case r.Owner != e.m.Owner:
		return verdictRefuse, nil, fmt.Errorf("%w: %q seq %d: owner %s, manifest owner %s", ErrBadRepair, r.Model, r.Seq, r.Owner, e.m.Owner)
	case r.Base < e.m.Version:
		return verdictRefuse, nil, fmt.Errorf("%w: %q seq %d amends version %d, known version %d: %w", ErrBadRepair, r.Model, r.Seq, r.Base, e.m.Version, ErrStaleVersion)
	case r.Base > e.m.Version || r.Seq > n+1:
		return verdictRefuse, nil, fmt.Errorf("repair of %q version %d seq %d, known version %d seq %d: %w", r.Model, r.Base, r.Seq, e.m.Version, n, errRepairBehind)
	case r.Seq >= 1 && r.Seq <= n:
		if bytes.Equal(e.chain[r.Seq-1].raw, raw) {
			return verdictDuplicate, nil, nil
		}
		if err := r.checkSigs(); err != nil {
			return verdictRefuse, nil, err
		}
		return verdictRefuse, nil, fmt.Errorf("%w: %q seq %d: another record with this seq was accepted first: %w", ErrBadRepair, r.Model, r.Seq, errRepairConflict)
	case n >= maxRepairChain:
		return verdictRefuse, nil, fmt.Errorf("%w: %q seq %d: %d repairs on version %d: %w", ErrBadRepair, r.Model, r.Seq, n, e.m.Version, errChainFull)
	}
	amended, err := e.eff().Amend(r)
	if err != nil {
		return verdictRefuse, nil, err
	}
	return verdictAccept, amended, nil
}

// checkRepair tells what applyRepair would do, without changing anything.
func (r *registry) checkRepair(rep *Repair, raw []byte) (verdict, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, _, err := decideRepair(r.entries[rep.Model], rep, raw)
	return v, err
}

// applyRepair adds rep to its model's chain if decideRepair accepts it,
// persisting the chain first when the registry has a datastore. It
// returns the verdict and, on acceptance, the amended manifest.
func (r *registry) applyRepair(ctx context.Context, rep *Repair, raw []byte) (verdict, *Manifest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[rep.Model]
	v, amended, err := decideRepair(e, rep, raw)
	if v != verdictAccept {
		return v, nil, err
	}
	next := &entry{m: e.m, env: e.env, chain: append(slices.Clone(e.chain), link{r: rep.Clone(), raw: raw}), cur: amended}
	if r.ds != nil {
		b, err := proto.Marshal(&pb.SyncEntry{Repairs: next.raws()})
		if err != nil {
			return verdictRefuse, nil, fmt.Errorf("persist repairs of %q: %w", rep.Model, err)
		}
		if err := r.ds.Put(ctx, repairPrefix.ChildString(rep.Model), b); err != nil {
			return verdictRefuse, nil, fmt.Errorf("persist repairs of %q: %w", rep.Model, err)
		}
	}
	r.entries[rep.Model] = next
	r.dig = nil
	return verdictAccept, amended.Clone(), nil
}

// decodeStoredChain decodes a chain persisted under RepairPrefix: the
// record encodings, at most maxRepairChain of them.
func decodeStoredChain(b []byte) ([][]byte, error) {
	var c pb.SyncEntry
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: decode stored chain: %v", ErrBadRepair, err)
	}
	if len(c.Envelope) != 0 || len(c.Repairs) > maxRepairChain {
		return nil, fmt.Errorf("%w: stored chain of %d records with a %d-byte envelope", ErrBadRepair, len(c.Repairs), len(c.Envelope))
	}
	return c.Repairs, nil
}
