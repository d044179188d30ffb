package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// This file holds the owner's side: Publish and Unpublish seal a manifest
// or tombstone, apply it locally and announce it by gossip, DHT record and
// (client mode) direct pushes.

// Publish signs m with sk and announces it: into the local registry, on the
// gossipsub topic, as a DHT record and, for a client-mode node, pushed to
// each connected peer. It fills m.Owner (from sk), m.Time (now) and
// m.Version (newer than any known version, at least the Unix time in ms)
// when they are zero, so callers see what was published. It refuses a
// model ID owned by another key (ErrNameTaken) and an explicit Version not
// newer than the known one (ErrStaleVersion).
func (d *Discovery) Publish(ctx context.Context, m *Manifest, sk crypto.PrivKey) error {
	if m == nil {
		return errors.New("publish: nil manifest")
	}
	if sk == nil {
		return fmt.Errorf("publish %q: nil private key", m.ID)
	}
	owner, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("publish %q: signer id: %w", m.ID, err)
	}
	if m.Owner == "" {
		m.Owner = owner
	} else if m.Owner != owner {
		return fmt.Errorf("publish %q: owner %s, key of %s: %w", m.ID, m.Owner, owner, ErrSignerNotOwner)
	}
	now := time.Now().UTC()
	if m.Time.IsZero() {
		m.Time = now
	}
	m.RepairSeq = 0 // a new owner version starts without repairs
	m.Time = m.Time.UTC().Round(0)
	known := d.reg.get(m.ID)
	if known != nil && known.m.Owner != owner {
		err := fmt.Errorf("publish %q: owned by %s: %w", m.ID, known.m.Owner, ErrNameTaken)
		d.refused(sourceLocal, d.h.ID(), m, err)
		return err
	}
	if m.Version == 0 {
		m.Version = nextVersion(known, now)
	}
	return d.sealAndAnnounce(ctx, m, sk)
}

// Unpublish replaces the model's manifest with a tombstone signed by sk
// (a higher version with Deleted set), announced like Publish. Only the
// owner may do so: another key gets ErrNotOwner, and the refusal is logged
// and counted. An unknown or already unpublished ID gives ErrNotFound.
func (d *Discovery) Unpublish(ctx context.Context, id string, sk crypto.PrivKey) error {
	if sk == nil {
		return fmt.Errorf("unpublish %q: nil private key", id)
	}
	signer, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("unpublish %q: signer id: %w", id, err)
	}
	if _, err := d.Lookup(ctx, id); err != nil {
		return fmt.Errorf("unpublish: %w", err)
	}
	known := d.reg.get(id)
	if known == nil || known.m.Deleted {
		return fmt.Errorf("unpublish %q: %w", id, ErrNotFound)
	}
	if known.m.Owner != signer {
		d.metrics.UnpublishRefused.Inc()
		d.log.Warn("unpublish refused", "id", id, "owner", known.m.Owner, "signer", signer)
		return fmt.Errorf("unpublish %q: owned by %s, key of %s: %w", id, known.m.Owner, signer, ErrNotOwner)
	}
	now := time.Now().UTC().Round(0)
	t := &Manifest{ID: id, Owner: signer, Version: nextVersion(known, now), Time: now, Deleted: true}
	return d.sealAndAnnounce(ctx, t, sk)
}

// nextVersion is the version for a new manifest: the Unix time in ms, or
// one more than the known version if that is not newer, and at least the
// shares version of the known (repaired) manifest, which the new one may
// keep. Time-based versions let an owner publish from a fresh process
// that knows nothing.
func nextVersion(known *entry, now time.Time) uint64 {
	v := uint64(max(now.UnixMilli(), 1))
	if known != nil && v <= known.m.Version {
		v = known.m.Version + 1
	}
	if known != nil {
		v = max(v, known.eff().Shares())
	}
	return v
}

func (d *Discovery) sealAndAnnounce(ctx context.Context, m *Manifest, sk crypto.PrivKey) error {
	env, err := Seal(m, sk)
	if err != nil {
		d.refused(sourceLocal, d.h.ID(), m, err)
		return fmt.Errorf("publish: %w", err)
	}
	opened, err := Open(env)
	if err != nil {
		return fmt.Errorf("publish %q: reopen own envelope: %w", m.ID, err)
	}
	if _, err := d.accept(ctx, sourceLocal, d.h.ID(), opened, env); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return d.announce(ctx, opened, env)
}

// announce spreads an accepted envelope: gossipsub, DHT, and direct pushes
// from client-mode nodes. A DHT failure is returned unless the node has no
// DHT peer at all (a lone node keeps the record locally).
func (d *Discovery) announce(ctx context.Context, m *Manifest, env []byte) error {
	if err := d.gossipOn(ctx, d.topic, env); err != nil {
		d.log.Warn("gossip manifest", "id", m.ID, "version", m.Version, "err", err)
	}
	var pushWG sync.WaitGroup
	if !d.cfg.Server {
		pushWG.Add(1)
		go func() {
			defer pushWG.Done()
			d.pushAll(ctx, m, env, nil)
		}()
	}
	err := d.dht.PutValue(ctx, DHTKey(m.ID), env)
	pushWG.Wait()
	if err != nil {
		if errors.Is(err, kb.ErrLookupFailure) && d.dht.RoutingTable().Size() == 0 {
			d.log.Warn("no dht peers: manifest kept in the local dht store only", "id", m.ID)
			return nil
		}
		return fmt.Errorf("publish %q: put dht record: %w", m.ID, err)
	}
	return nil
}

// gossipOn publishes data on topic t, waiting briefly for a topic peer
// when the node has connections but no known subscriber yet.
func (d *Discovery) gossipOn(ctx context.Context, t *pubsub.Topic, data []byte) error {
	if len(t.ListPeers()) == 0 && len(d.h.Network().Peers()) > 0 {
		wctx, cancel := context.WithTimeout(ctx, publishReadyTimeout)
		for len(t.ListPeers()) == 0 && wctx.Err() == nil {
			select {
			case <-wctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
	}
	if err := t.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish on %s: %w", t.String(), err)
	}
	return nil
}
