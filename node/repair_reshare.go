package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// Reshare moves model id, which this node must own, to the holder list
// holders (same length and party order as the current one; any places may
// change, but every share must keep a holder) and re-randomises every
// share: the repair session (transfers from live replicas, a sharing of
// zero among the new list; see repair.go) run by the owner, every holder
// of the new list reachable, then a new manifest version signed by the
// owner with the new holders and shares version (no repair record). The
// replaced holders drop their shares when the new manifest reaches them.
func (n *Node) Reshare(ctx context.Context, id string, holders []peer.ID) (*RepairResult, error) {
	start := time.Now()
	m, err := n.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reshare %q: %w", id, err)
	}
	if err := checkReshare(m, n.ID(), holders); err != nil {
		return nil, fmt.Errorf("reshare %q: %w", id, err)
	}
	live := n.probeHolders(ctx, holders, nil)
	var down, newcomers, replaced []peer.ID
	for j, h := range holders {
		if !live[h] {
			down = append(down, h)
		}
		if h != m.Holders[j] {
			replaced, newcomers = append(replaced, m.Holders[j]), append(newcomers, h)
		}
	}
	if len(down) > 0 {
		return nil, fmt.Errorf("reshare %q: %w: holder(s) of the new list unreachable: %s", id, ErrNoHolder, peerList(down))
	}
	rp, err := buildRepairPlan(m, replaced, newcomers, time.Now())
	if err != nil {
		return nil, fmt.Errorf("reshare %q: %w", id, err)
	}
	var next *discovery.Manifest
	publish := func(ctx context.Context, rec *discovery.Repair) error {
		next = m.Clone()
		next.Holders = slices.Clone(rec.Holders)
		next.SharesVersion = rec.SharesVersion
		next.Version = max(m.Version+1, rec.SharesVersion, uint64(time.Now().UnixMilli()))
		next.RepairSeq = 0
		next.Time = time.Time{}
		return n.disc.Publish(ctx, next, n.sk)
	}
	moved, err := n.repairSession(ctx, m, rp, publish)
	if err != nil {
		return nil, fmt.Errorf("reshare %q: %w", id, err)
	}
	res := &RepairResult{Model: id, Replaced: replaced, Newcomers: newcomers, Holders: next.Holders,
		SharesVersion: next.SharesVersion, Duration: time.Since(start), BytesMoved: moved}
	n.log.Info("re-shared", "model", id, "replaced", replaced, "newcomers", newcomers, "version", next.Version,
		"shares_version", next.SharesVersion, "ms", res.Duration.Milliseconds(), "bytes", moved)
	return res, nil
}

// checkReshare checks an owner's re-sharing of m to holders before it
// starts: the owner asks, a replicated mpc model, a list of the same
// length naming no peer twice and no owner or dealer, with a change.
func checkReshare(m *discovery.Manifest, self peer.ID, holders []peer.ID) error {
	switch {
	case m.Owner != self:
		return fmt.Errorf("owned by %s, this peer is %s: %w", m.Owner, self, ErrNotOwner)
	case m.Mode != discovery.ModeMPC || !m.Replicated():
		return fmt.Errorf("%w: only a model published with --tolerate F >= 1 can be re-shared", ErrBadInput)
	case len(holders) != len(m.Holders):
		return fmt.Errorf("%w: %d holders given, the model has %d (party order kept)", ErrBadInput, len(holders), len(m.Holders))
	}
	changed := false
	for j, h := range holders {
		switch {
		case slices.Contains(holders[:j], h):
			return fmt.Errorf("%w: holder %s named twice", ErrBadInput, h)
		case h == m.Owner || slices.Contains(m.Dealers, h):
			return fmt.Errorf("%w: %s is the owner or a dealer of the model", ErrBadInput, h)
		case h != m.Holders[j] && slices.Contains(m.Holders, h):
			return fmt.Errorf("%w: %s is holder %d already: a holder keeps its place", ErrBadInput, h, slices.Index(m.Holders, h))
		case h != m.Holders[j]:
			changed = true
		}
	}
	if !changed {
		return fmt.Errorf("%w: the new holder list is the current one", ErrBadInput)
	}
	return nil
}
