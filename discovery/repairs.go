package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// This file holds the intake and spreading of repair records: PublishRepair,
// the repair topic's validator and reader, loading persisted chains, and
// logging and counting refusals.

// RepairTopic is the gossipsub topic on which repair records
// (pb.RepairRecord) are announced.
const RepairTopic = "grid/repairs/1"

// PublishRepair verifies r against this node's effective manifest of the
// model (see Repair.Verify), stores it, and announces it: on the repair
// topic, in the DHT's chain record and, from a client-mode node, pushed to
// each connected peer with the owner's envelope and the whole chain.
// Lookup, Latest, Models and the catalog then answer the amended manifest.
// A record this node already holds is announced again.
func (d *Discovery) PublishRepair(ctx context.Context, r *Repair) error {
	if r == nil {
		return errors.New("publish repair: nil record")
	}
	raw, err := MarshalRepair(r)
	if err != nil {
		return fmt.Errorf("publish repair: %w", err)
	}
	rec, err := UnmarshalRepair(raw)
	if err != nil {
		return fmt.Errorf("publish repair: %w", err)
	}
	if v, err := d.acceptRepair(ctx, sourceLocal, d.h.ID(), rec, raw); v == verdictRefuse {
		return fmt.Errorf("publish repair: %w", err)
	}
	return d.announceRepair(ctx, rec.Model, raw)
}

// announceRepair spreads an accepted record: gossip, DHT chain record,
// and direct pushes from client-mode nodes. Only a failure of all the
// network paths is an error.
func (d *Discovery) announceRepair(ctx context.Context, id string, raw []byte) error {
	gerr := d.gossipOn(ctx, d.repairTopic, raw)
	if gerr != nil {
		d.log.Warn("gossip repair", "id", id, "err", gerr)
	}
	e := d.reg.get(id)
	if e == nil {
		return fmt.Errorf("publish repair of %q: model gone", id)
	}
	var wg sync.WaitGroup
	if !d.cfg.Server {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.pushAll(ctx, e.m, e.env, e.raws())
		}()
	}
	d.putChain(ctx, e)
	wg.Wait()
	return nil
}

// acceptRepair applies a decoded record to the registry, logging and
// counting the outcome.
func (d *Discovery) acceptRepair(ctx context.Context, source string, from peer.ID, r *Repair, raw []byte) (verdict, error) {
	v, m, err := d.reg.applyRepair(ctx, r, raw)
	switch v {
	case verdictAccept:
		d.metrics.RepairsAccepted.WithLabelValues(source).Inc()
		d.log.Info("repair accepted", "id", r.Model, "owner", r.Owner, "version", r.Base, "seq", r.Seq,
			"holders", m.Holders, "shares_version", r.SharesVersion, "source", source, "from", from)
		d.notifyWatchers()
	case verdictRefuse:
		d.refusedRepair(source, from, r, err)
	}
	return v, err
}

// ingestRepair decodes raw and accepts it.
func (d *Discovery) ingestRepair(ctx context.Context, source string, from peer.ID, raw []byte) (verdict, error) {
	r, err := UnmarshalRepair(raw)
	if err != nil {
		d.refusedRepair(source, from, nil, err)
		return verdictRefuse, err
	}
	return d.acceptRepair(ctx, source, from, r, raw)
}

// ingestChain accepts records in order, stopping at the first refusal (the
// later ones cannot follow it). It reports whether any was accepted.
func (d *Discovery) ingestChain(ctx context.Context, source string, from peer.ID, raws [][]byte) (bool, error) {
	accepted := false
	for _, raw := range raws {
		v, err := d.ingestRepair(ctx, source, from, raw)
		if v == verdictRefuse {
			return accepted, err
		}
		accepted = accepted || v == verdictAccept
	}
	return accepted, nil
}

// refusedRepair logs and counts one refused repair record. A node that is
// behind or ahead of the sender, or a record the owner has superseded, is
// not an attack: logged at Debug. A conflict (two validly signed records
// with one seq) is logged: the first accepted wins.
func (d *Discovery) refusedRepair(source string, from peer.ID, r *Repair, err error) {
	why := reason(err)
	d.metrics.RepairsRefused.WithLabelValues(source, why).Inc()
	attrs := []any{"source", source, "from", from, "reason", why, "err", err}
	if r != nil {
		attrs = append(attrs, "id", r.Model, "owner", r.Owner, "version", r.Base, "seq", r.Seq)
	}
	switch {
	case errors.Is(err, errRepairBehind), errors.Is(err, ErrStaleVersion):
		d.log.Debug("repair record ignored", attrs...)
	case errors.Is(err, errRepairConflict):
		d.log.Warn("repair conflict: the first accepted record wins", attrs...)
	default:
		d.log.Warn("repair refused", attrs...)
	}
}

// validateRepairMessage is the repair topic's validator: the record must
// decode and be the next of its chain (decideRepair). A node behind the
// forwarder pulls its catalog; only records that are malformed or do not
// verify penalise the forwarder.
func (d *Discovery) validateRepairMessage(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	r, err := UnmarshalRepair(msg.Data)
	if err != nil {
		d.refusedRepair(sourcePubsub, from, nil, err)
		return pubsub.ValidationReject
	}
	v, err := d.reg.checkRepair(r, msg.Data)
	switch {
	case v == verdictAccept, v == verdictDuplicate && from == d.h.ID():
		msg.ValidatorData = r
		return pubsub.ValidationAccept
	case v == verdictDuplicate:
		return pubsub.ValidationIgnore
	}
	d.refusedRepair(sourcePubsub, from, r, err)
	switch {
	case errors.Is(err, errRepairBehind):
		if from != d.h.ID() {
			d.syncAsync(from, false)
		}
		return pubsub.ValidationIgnore
	case errors.Is(err, ErrStaleVersion), errors.Is(err, errRepairConflict), errors.Is(err, errChainFull):
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationReject
}

// readRepairs applies every validated repair topic message.
func (d *Discovery) readRepairs() {
	defer d.wg.Done()
	for {
		msg, err := d.repairSub.Next(d.ctx)
		if err != nil {
			return
		}
		r, ok := msg.ValidatorData.(*Repair)
		if !ok {
			_, _ = d.ingestRepair(d.ctx, sourcePubsub, msg.ReceivedFrom, msg.Data)
			continue
		}
		_, _ = d.acceptRepair(d.ctx, sourcePubsub, msg.ReceivedFrom, r, msg.Data)
	}
}

// loadRepairs re-applies the persisted chains (after the envelopes). A
// chain whose base the owner has superseded is refused and deleted.
func (d *Discovery) loadRepairs(ctx context.Context) error {
	items, err := d.reg.loadStored(ctx, repairPrefix)
	for _, it := range items {
		raws, derr := decodeStoredChain(it.env)
		if derr != nil {
			d.refusedRepair(sourceStore, "", nil, fmt.Errorf("stored %s: %w", it.key, derr))
			continue
		}
		id := strings.TrimPrefix(it.key, repairPrefix.String()+"/")
		for _, raw := range raws {
			r, rerr := UnmarshalRepair(raw)
			if rerr == nil && r.Model != id {
				rerr = fmt.Errorf("%w: stored under %s: %w", ErrBadRepair, it.key, errBadKey)
			}
			if rerr != nil {
				d.refusedRepair(sourceStore, "", r, rerr)
				break
			}
			if v, aerr := d.acceptRepair(ctx, sourceStore, "", r, raw); v == verdictRefuse {
				if errors.Is(aerr, ErrStaleVersion) && d.reg.ds != nil {
					_ = d.reg.ds.Delete(ctx, datastore.NewKey(it.key)) // superseded by the owner
				}
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("load repairs: %w", err)
	}
	return nil
}
