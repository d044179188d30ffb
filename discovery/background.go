package discovery

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
)

// This file holds the background work besides the topic reader: catalog
// pulls from newly identified peers, the periodic anti-entropy sync and the
// servers' DHT republishing of manifests and role records.

// watchPeers pulls the catalog of every newly identified peer that speaks
// the sync protocol: the late-joiner catch-up.
func (d *Discovery) watchPeers() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-d.evsub.Out():
			if !ok {
				return
			}
			e := ev.(event.EvtPeerIdentificationCompleted)
			for _, p := range e.Protocols {
				if p == SyncProtocol {
					d.syncAsync(e.Peer, false)
					break
				}
			}
		}
	}
}

// tick runs the periodic work: anti-entropy sync with a random peer, and
// (servers) DHT republishing of manifests and role records.
func (d *Discovery) tick() {
	defer d.wg.Done()
	var syncC, repubC <-chan time.Time
	if d.cfg.SyncInterval > 0 {
		t := time.NewTicker(d.cfg.SyncInterval)
		defer t.Stop()
		syncC = t.C
	}
	if d.cfg.Server && d.cfg.RepublishInterval > 0 {
		t := time.NewTicker(d.cfg.RepublishInterval)
		defer t.Stop()
		repubC = t.C
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-syncC:
			peers := d.syncPeers()
			if len(peers) > 0 {
				d.syncAsync(peers[rand.IntN(len(peers))], true)
			}
		case <-repubC:
			d.republish(d.ctx)
		}
	}
}

// republish re-puts every known envelope and repair chain in the DHT and
// re-provides the advertised roles.
func (d *Discovery) republish(ctx context.Context) {
	for _, e := range d.reg.all() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := d.dht.PutValue(pctx, DHTKey(e.m.ID), e.env); err != nil {
			d.log.Debug("republish manifest", "id", e.m.ID, "err", err)
		}
		cancel()
		d.putChain(ctx, e)
	}
	d.rolesMu.Lock()
	roles := make([]string, 0, len(d.roles))
	for r := range d.roles {
		roles = append(roles, r)
	}
	d.rolesMu.Unlock()
	for _, r := range roles {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := d.provideRole(pctx, r); err != nil {
			d.log.Debug("re-provide role", "role", r, "err", err)
		}
		cancel()
	}
}
