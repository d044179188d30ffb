package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// Who deals a model's sessions is the owner's decision, never the client's:
// whoever writes the dealer's material (C = A·B of a triple, the integer
// bits of a comparison) steers the computation, and a client that deals
// its own sessions extracts the weights from the outputs. So the signed
// manifest names the dealers the owner trusts (discovery.Manifest.Dealers),
// the owner may always deal, holders refuse every other dealer
// (ErrUntrustedDealer), and a dealer serves only models whose manifest
// names it.

// DefaultDealers is how many advertised dealers Publish names in the
// manifest when PublishOptions.Dealers is nil.
const DefaultDealers = 3

// findDealers returns up to max reachable peers advertising the dealer role
// that are not in exclude (the holders), in random order, looking for up
// to Timing.DealerWait while there is none.
func (n *Node) findDealers(ctx context.Context, max int, exclude []peer.ID) []peer.ID {
	deadline := time.Now().Add(n.cfg.Timing.DealerWait)
	for {
		ps, err := n.reachable(ctx, RoleDealer, 32, exclude)
		if (err == nil && len(ps) > 0) || ctx.Err() != nil || time.Now().After(deadline) {
			if len(ps) > max {
				ps = ps[:max]
			}
			return ps
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// chooseDealer resolves InferOptions.Dealer against the manifest: "self"
// (only for the model's owner), a given peer (only one the manifest
// allows), or by default a reachable dealer the manifest names, in random
// order, falling back to this node only when it is the owner. It returns
// the dealer and whether it is this node.
func (n *Node) chooseDealer(ctx context.Context, m *discovery.Manifest, opt string) (peer.ID, bool, error) {
	switch opt {
	case DealerSelf:
		if n.ID() != m.Owner {
			return "", false, fmt.Errorf("%w: %w: only the owner of model %q (%s) may deal its sessions, this peer is %s",
				ErrBadInput, ErrUntrustedDealer, m.ID, m.Owner, n.ID())
		}
		return n.ID(), true, nil
	case "":
		if d, ok := n.reachableDealer(ctx, m.Dealers); ok {
			return d, d == n.ID(), nil
		}
		if n.ID() == m.Owner {
			return n.ID(), true, nil
		}
		if len(m.Dealers) == 0 {
			return "", false, fmt.Errorf("%w: model %q's owner names no dealer, so only the owner can query it (it may add dealers with grid dealers --set)", ErrNoDealer, m.ID)
		}
		return "", false, fmt.Errorf("%w: none of the %d dealer(s) model %q's owner trusts is reachable (%s)", ErrNoDealer, len(m.Dealers), m.ID, peerList(m.Dealers))
	default:
		id, err := peer.Decode(opt)
		if err != nil {
			return "", false, fmt.Errorf("%w: dealer %q is not a peer ID or \"self\": %v", ErrBadInput, opt, err)
		}
		if !m.MayDeal(id) {
			return "", false, fmt.Errorf("%w: %w: dealer %s is not one model %q's owner trusts (the manifest names %s)",
				ErrBadInput, ErrUntrustedDealer, id, m.ID, peerList(m.Dealers))
		}
		return id, id == n.ID(), nil
	}
}

// checkSession checks a session against the model's signed manifest, as
// every holder (role "holder") and the dealer (role "dealer") do on their
// own: an mpc model that allows remote inference, at the session's
// version, whose owner trusts the session's dealer (ErrUntrustedDealer
// otherwise), with a replica choice that covers its shares.
func checkSession(m *discovery.Manifest, version uint64, dealer peer.ID, reps []peer.ID, role string) error {
	switch {
	case m.Mode != discovery.ModeMPC:
		return badRequest("model %q is published in %s mode", m.ID, m.Mode)
	case !m.AllowRemote:
		return fmt.Errorf("%w: %q", ErrRemoteInferenceDisabled, m.ID)
	case version != m.Version:
		return badRequest("model %q version %d, this %s knows version %d", m.ID, version, role, m.Version)
	case !m.MayDeal(dealer):
		return fmt.Errorf("%w: dealer %s is not the owner of model %q nor a dealer its manifest names", ErrUntrustedDealer, dealer, m.ID)
	}
	return checkReplicaChoice(m, reps)
}

// reachableDealer returns one of ds that this node can reach now, at
// random among those connected already or dialled first: all are probed at
// once (probeHolders), so a dead dealer costs probeGrace when another one
// answers, and probeTimeout when none does (not a timeout per dealer).
func (n *Node) reachableDealer(ctx context.Context, ds []peer.ID) (peer.ID, bool) {
	if slices.Contains(ds, n.ID()) {
		return n.ID(), true
	}
	if len(ds) == 0 {
		return "", false
	}
	live := n.probeHolders(ctx, ds, func(live map[peer.ID]bool) bool {
		for _, ok := range live {
			if ok {
				return true
			}
		}
		return false
	})
	var up []peer.ID
	for _, d := range ds {
		if live[d] {
			up = append(up, d)
		} else {
			n.log.Debug("trusted dealer unreachable", "dealer", d)
		}
	}
	if len(up) == 0 {
		return "", false
	}
	return up[rand.IntN(len(up))], true
}

// peerList formats peer IDs for an error message ("none" when empty).
func peerList(ps []peer.ID) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// SetDealers replaces the dealers model id's manifest names with dealers,
// as a new manifest version signed by this node, which must be the owner.
// The holders keep serving the shares they have (SharesVersion); dealers
// must not be holders of the model.
func (n *Node) SetDealers(ctx context.Context, id string, dealers []peer.ID) (*discovery.Manifest, error) {
	m, err := n.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("set dealers of %q: %w", id, err)
	}
	if m.Owner != n.ID() {
		return nil, fmt.Errorf("set dealers of %q: owned by %s, this peer is %s: %w", id, m.Owner, n.ID(), ErrNotOwner)
	}
	if m.Mode != discovery.ModeMPC {
		return nil, fmt.Errorf("set dealers of %q: %w: a %s-mode model has no dealers", id, ErrBadInput, m.Mode)
	}
	for _, d := range dealers {
		if containsPeer(m.Holders, d) {
			return nil, fmt.Errorf("set dealers of %q: %w: dealer %s is one of the model's holders", id, ErrBadInput, d)
		}
	}
	next := m.Clone()
	next.Dealers = slices.Clone(dealers)
	next.SharesVersion = m.Shares()
	// A repaired manifest's shares version (set by a holder's clock) may
	// be newer than the owner's clock: a version is never older than the
	// shares it serves.
	next.Version = max(m.Version+1, m.Shares(), uint64(time.Now().UnixMilli()))
	next.Time = time.Time{}
	if err := n.disc.Publish(ctx, next, n.sk); err != nil {
		return nil, fmt.Errorf("set dealers of %q: %w", id, err)
	}
	n.log.Info("dealers updated", "id", id, "dealers", dealers, "version", next.Version)
	return next, nil
}
