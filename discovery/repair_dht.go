package discovery

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// This file holds the DHT record of a model's repair chain, so that a node
// that learns a model from the DHT (Lookup) also learns its repairs.

// DHTRepairNamespace is the DHT record namespace of repair chains (see
// DHTRepairKey).
const DHTRepairNamespace = "grid-repair"

// DHTRepairKey is the DHT record key of a model's repair chain:
// /grid-repair/<id>. Its value is a pb.SyncEntry whose Repairs are the
// chain's records in sequence order.
func DHTRepairKey(id string) string { return "/" + DHTRepairNamespace + "/" + id }

// putChain stores e's chain as its DHT record (best effort: gossip and
// catalog sync also carry it).
func (d *Discovery) putChain(ctx context.Context, e *entry) {
	if len(e.chain) == 0 {
		return
	}
	b, err := proto.Marshal(&pb.SyncEntry{Repairs: e.raws()})
	if err != nil {
		d.log.Debug("put repair chain", "id", e.m.ID, "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.dht.PutValue(pctx, DHTRepairKey(e.m.ID), b); err != nil {
		d.log.Debug("put repair chain", "id", e.m.ID, "err", err)
	}
}

// fetchChain reads the model's chain from the DHT and applies it (Lookup
// of a model with a repair policy, just learnt from the DHT).
func (d *Discovery) fetchChain(ctx context.Context, id string) {
	val, err := d.dht.GetValue(ctx, DHTRepairKey(id), dht.Quorum(dhtQuorum))
	if err != nil {
		d.log.Debug("get repair chain", "id", id, "err", err)
		return
	}
	raws, err := decodeStoredChain(val)
	if err != nil {
		d.refusedRepair(sourceDHT, "", nil, err)
		return
	}
	_, _ = d.ingestChain(ctx, sourceDHT, "", raws)
}

// chainValidator is the DHT record validator of the grid-repair namespace.
type chainValidator struct{ d *Discovery }

// Validate accepts a chain whose records decode, name the key's model,
// link up (one owner and base, seq 1, 2, ..., each record's PrevHolders
// the previous one's Holders) and carry every new holder's valid
// signature. When this node knows the chain's base manifest, the whole
// chain must also verify against it (Amend), and a chain of another owner
// is refused.
func (v chainValidator) Validate(key string, value []byte) error {
	_, err := v.parse(key, value)
	if err != nil {
		v.d.refusedRepair(sourceDHT, "", nil, err)
	}
	return err
}

func (v chainValidator) parse(key string, value []byte) ([]*Repair, error) {
	raws, err := decodeStoredChain(value)
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: empty dht chain under %q", ErrBadRepair, key)
	}
	rs := make([]*Repair, len(raws))
	for i, raw := range raws {
		if rs[i], err = UnmarshalRepair(raw); err != nil {
			return nil, err
		}
		if err := linkChain(key, rs, i); err != nil {
			return nil, err
		}
	}
	e := v.d.reg.get(rs[0].Model)
	if e != nil && e.m.Owner != rs[0].Owner {
		return nil, fmt.Errorf("%w: dht chain of %q: owner %s, manifest owner %s", ErrBadRepair, rs[0].Model, rs[0].Owner, e.m.Owner)
	}
	known := 0 // records this node's registry holds, verified already
	for e != nil && e.m.Version == rs[0].Base && known < min(len(raws), len(e.chain)) && bytes.Equal(raws[known], e.chain[known].raw) {
		known++
	}
	if e != nil && e.m.Version == rs[0].Base {
		m := e.at(known)
		for _, r := range rs[known:] {
			if err := r.Verify(m); err != nil {
				return nil, err
			}
			m = shallowAmend(m, r)
		}
		return rs, nil
	}
	for _, r := range rs { // a base this node does not hold: Lookup verifies it
		if err := r.checkSigs(); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// linkChain checks that rs[i] follows rs[i-1] (or starts the chain under
// key).
func linkChain(key string, rs []*Repair, i int) error {
	r := rs[i]
	if i == 0 {
		if key != DHTRepairKey(r.Model) || r.Seq != 1 {
			return fmt.Errorf("%w: chain of %q seq %d under key %q: %w", ErrBadRepair, r.Model, r.Seq, key, errBadKey)
		}
		return nil
	}
	p := rs[i-1]
	if r.Model != p.Model || r.Owner != p.Owner || r.Base != p.Base || r.Seq != p.Seq+1 || !slices.Equal(r.PrevHolders, p.Holders) {
		return fmt.Errorf("%w: dht chain of %q: record %d does not follow record %d", ErrBadRepair, r.Model, i, i-1)
	}
	return nil
}

// Select picks the chain with the newest base, then the longest; ties keep
// the first.
func (v chainValidator) Select(key string, vals [][]byte) (int, error) {
	best := -1
	var bestBase, bestLen uint64
	for i, val := range vals {
		rs, err := v.parse(key, val)
		if err != nil {
			continue
		}
		base, n := rs[0].Base, uint64(len(rs))
		if best < 0 || base > bestBase || base == bestBase && n > bestLen {
			best, bestBase, bestLen = i, base, n
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("select %q: none of %d records is a valid repair chain", key, len(vals))
	}
	return best, nil
}
