package discovery

import (
	"context"
	"errors"
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/routing"
)

// This file holds the reading of the registry: Models, Latest, Lookup
// (falling back to the DHT) and the Watch subscriptions to its changes.

// Models returns copies of the current, non-deleted, verified manifests,
// amended by their repair chains (see Repair), sorted by ID (an empty, non-nil slice when there are none).
func (d *Discovery) Models() []*Manifest {
	out := []*Manifest{}
	for _, e := range d.reg.all() {
		if !e.m.Deleted {
			out = append(out, e.eff().Clone())
		}
	}
	return out
}

// Latest returns a copy of the newest verified manifest this node knows
// for id, amended by its repair chain, tombstones included (Deleted set),
// without asking the network.
// Holders use it, on each Watch signal, to retire shares of unpublished or
// republished models.
func (d *Discovery) Latest(id string) (*Manifest, bool) {
	e := d.reg.get(id)
	if e == nil {
		return nil, false
	}
	return e.eff().Clone(), true
}

// Watch subscribes to registry changes: the returned channel receives a
// signal after the registry accepts a newer manifest of any model (a
// publish, republish, tombstone or repair record, from gossip, catalog
// sync, the DHT or this node). Signals are coalesced (the channel holds at most one), so a
// reader looks up what it cares about with Latest or Models after each
// signal; it never misses the last change. stop ends the subscription (the
// channel is not closed). Watch does not report what was loaded from the
// datastore at New: read Latest or Models once after subscribing.
func (d *Discovery) Watch() (changed <-chan struct{}, stop func()) {
	c := make(chan struct{}, 1)
	d.watchMu.Lock()
	d.watchers[c] = struct{}{}
	d.watchMu.Unlock()
	return c, func() {
		d.watchMu.Lock()
		delete(d.watchers, c)
		d.watchMu.Unlock()
	}
}

// notifyWatchers signals every Watch subscriber without blocking.
func (d *Discovery) notifyWatchers() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	for c := range d.watchers {
		select {
		case c <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// Lookup returns the model's manifest from the registry or, if unknown
// there, from the DHT (the record is verified and added to the registry).
// An unknown or unpublished ID gives an error wrapping ErrNotFound.
func (d *Discovery) Lookup(ctx context.Context, id string) (*Manifest, error) {
	if err := ValidID(id); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	if e := d.reg.get(id); e != nil {
		return liveClone(e)
	}
	val, err := d.dht.GetValue(ctx, DHTKey(id), dht.Quorum(dhtQuorum))
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) || errors.Is(err, kb.ErrLookupFailure) {
			return nil, fmt.Errorf("lookup %q: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("lookup %q in dht: %w", id, err)
	}
	m, err := Open(val)
	if err != nil {
		d.refused(sourceDHT, "", nil, err)
		return nil, fmt.Errorf("lookup %q: dht record: %w", id, err)
	}
	if m.ID != id {
		err := fmt.Errorf("lookup %q: record for %q: %w", id, m.ID, errBadKey)
		d.refused(sourceDHT, "", m, err)
		return nil, err
	}
	_, aerr := d.accept(ctx, sourceDHT, "", m, val)
	if m.Repair.Enabled() && !m.Deleted {
		d.fetchChain(ctx, id)
	}
	if e := d.reg.get(id); e != nil {
		return liveClone(e)
	}
	return nil, fmt.Errorf("lookup %q: %w", id, aerr)
}

func liveClone(e *entry) (*Manifest, error) {
	if e.m.Deleted {
		return nil, fmt.Errorf("model %q unpublished at version %d: %w", e.m.ID, e.m.Version, ErrNotFound)
	}
	return e.eff().Clone(), nil
}
