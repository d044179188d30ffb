package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Unpublish replaces the model's manifest with a tombstone signed by this
// node, which must be its owner (ErrNotOwner otherwise). Holders drop their
// shares when the tombstone reaches them.
func (n *Node) Unpublish(ctx context.Context, id string) error {
	m, err := n.lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("unpublish %q: %w", id, err)
	}
	if m.Owner != n.ID() {
		return fmt.Errorf("unpublish %q: owned by %s, this peer is %s: %w", id, m.Owner, n.ID(), ErrNotOwner)
	}
	if err := n.disc.Unpublish(ctx, id, n.sk); err != nil {
		return fmt.Errorf("unpublish %q: %w", id, err)
	}
	n.log.Info("unpublished", "id", id)
	return nil
}

// tombstoneLoop drops stored shares whose model was unpublished by its owner
// (a tombstone newer than the shares) or republished without this node. It
// looks at the store once at start, then after each change discovery
// reports (Watch) and every Timing.TombstoneSweep.
func (n *Node) tombstoneLoop() {
	defer n.wg.Done()
	changed, stop := n.disc.Watch()
	defer stop()
	t := time.NewTicker(n.cfg.Timing.TombstoneSweep)
	defer t.Stop()
	for {
		n.dropSuperseded()
		select {
		case <-n.ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// dropSuperseded removes the stored versions that a newer manifest
// retires: every version older than the one an accepted manifest serves
// (Manifest.Shares), all of them when the model was unpublished or
// republished without this node. A version newer than the manifest's, an
// upload staged for the next manifest, stays.
func (n *Node) dropSuperseded() {
	for _, sm := range n.store.list() {
		if n.ctx.Err() != nil {
			return
		}
		drop, why := n.superseded(sm.meta)
		if !drop {
			continue
		}
		owner, err := peer.Decode(sm.meta.Owner)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err = n.store.removeVersion(ctx, owner, sm.meta.Model, sm.meta.Version)
		cancel()
		if err != nil {
			n.log.Warn("drop shares", "model", sm.meta.Model, "version", sm.meta.Version, "err", err)
			continue
		}
		n.log.Info("dropped shares", "model", sm.meta.Model, "owner", owner, "version", sm.meta.Version, "reason", why)
	}
}

// superseded tells whether discovery knows a manifest by the shares' owner
// that retires them.
func (n *Node) superseded(meta shareMeta) (bool, string) {
	m, ok := n.disc.Latest(meta.Model)
	if !ok || m.Owner.String() != meta.Owner || m.Version <= meta.Version {
		return false, ""
	}
	switch {
	case m.Deleted:
		return true, fmt.Sprintf("unpublished at version %d", m.Version)
	case !containsPeer(m.Holders, n.ID()):
		return true, fmt.Sprintf("republished at version %d without this peer", m.Version)
	case meta.Version < m.Shares():
		return true, fmt.Sprintf("replaced by version %d", m.Shares())
	}
	return false, ""
}

// servedShares is the shares version the accepted manifest of owner's
// model serves (the store never drops it for a newer upload).
func (n *Node) servedShares(owner peer.ID, model string) (uint64, bool) {
	m, ok := n.disc.Latest(model)
	if !ok || m.Owner != owner || m.Deleted {
		return 0, false
	}
	return m.Shares(), true
}

// missingModels returns the live manifests that name this node as a holder
// (or host) of a version whose shares it does not have: lost with a
// truncated store, or never received.
func (n *Node) missingModels() []string {
	var out []string
	for _, m := range n.disc.Models() {
		party := -1
		for i, h := range m.Holders {
			if h == n.ID() {
				party = i
			}
		}
		if party < 0 {
			continue
		}
		_, err := n.store.getVersion(m.Owner, m.ID, m.Shares())
		vs := n.store.versions(m.Owner, m.ID)
		switch {
		case errors.Is(err, ErrDamaged):
			continue // reported as damaged already
		case err != nil && len(vs) == 0:
			out = append(out, fmt.Sprintf("%s (party %d, version %d): no shares", m.ID, party, m.Version))
		case err != nil:
			out = append(out, fmt.Sprintf("%s (party %d, version %d): shares of version %v only", m.ID, party, m.Version, vs))
		}
	}
	return out
}

// reportMissing logs and counts the models this node should hold but
// cannot serve (it refuses their queries as unknown).
func (n *Node) reportMissing() {
	missing := n.missingModels()
	n.met.missing.Set(float64(len(missing)))
	for _, m := range missing {
		n.log.Error("a manifest names this peer as a holder of a model it does not have", "model", m)
	}
}
