package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Finding and reaching peers: the holders of a new model, the dealers it
// names, a peer that may have moved.

// pickPeers finds count peers advertising role (not this node, not in
// exclude) that it can connect to, waiting up to Timing.PeerWait for
// enough of them to be advertised, and returns them in random order.
func (n *Node) pickPeers(ctx context.Context, role string, count int, exclude []peer.ID) ([]peer.ID, error) {
	deadline := time.Now().Add(n.cfg.Timing.PeerWait)
	for {
		found, err := n.reachable(ctx, role, 64, exclude)
		if len(found) >= count {
			return slices.Clone(found[:count]), nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("find %q peers: %w", role, err)
			}
			return nil, fmt.Errorf("found %d reachable %q peers (owner and excluded peers left out), need %d", len(found), role, count)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reachable is one FindPeers round: up to limit peers advertising role
// that are worth dialling (candidates) and that this node can connect to,
// in random order.
func (n *Node) reachable(ctx context.Context, role string, limit int, exclude []peer.ID) ([]peer.ID, error) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ais, err := n.disc.FindPeers(fctx, role, limit)
	cancel()
	if err != nil {
		return nil, err
	}
	var out []peer.ID
	for _, ai := range candidates(ais, n.ID(), exclude) {
		if err := n.connectProvider(ctx, ai); err != nil {
			n.log.Debug("skip unreachable peer", "role", role, "peer", ai.ID, "err", err)
			continue
		}
		out = append(out, ai.ID)
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// connected tells whether this node has a connection to p, direct or
// relayed (network.Limited: through a circuit relay, within its limits).
func (n *Node) connected(p peer.ID) bool {
	c := n.h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// connectProvider connects to a peer found in a provider record: at the
// record's addresses, else at those a DHT lookup gives now, for up to 3 s
// (a peer behind a NAT advertised before it had its relay address; its
// neighbours know that address since).
func (n *Node) connectProvider(ctx context.Context, ai peer.AddrInfo) error {
	return n.dial(ctx, ai, 3*time.Second)
}

// candidates are the advertised peers worth dialling, in the order found:
// neither self, nor in exclude (a new model's dealers are never its
// holders, and the reverse), nor found before.
func candidates(ais []peer.AddrInfo, self peer.ID, exclude []peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, ai := range ais {
		if ai.ID == self || containsPeer(exclude, ai.ID) || slices.ContainsFunc(out, func(o peer.AddrInfo) bool { return o.ID == ai.ID }) {
			continue
		}
		out = append(out, ai)
	}
	return out
}

// containsPeer tells whether p is one of ps.
func containsPeer(ps []peer.ID, p peer.ID) bool { return slices.Contains(ps, p) }

// ensureAddrs makes sure p is reachable: already connected, or dialled at
// its known addresses, or else looked up in the DHT (a restarted peer may
// listen elsewhere) and dialled there.
func (n *Node) ensureAddrs(ctx context.Context, p peer.ID) error {
	if n.connected(p) {
		return nil
	}
	// A peer that just (re)started may not be in its neighbours' routing
	// tables yet: the lookup is retried for a few seconds.
	return n.dial(ctx, peer.AddrInfo{ID: p}, 10*time.Second)
}

// dial connects to ai.ID at ai.Addrs and the addresses the peerstore
// knows (5 s), else looks it up in the DHT and dials what it finds,
// retrying the lookup every 200 ms for up to lookup. A relayed connection
// will do: a peer behind a NAT may have no other until hole punching
// gives one (go-libp2p would otherwise wait for a direct connection it
// may never get).
func (n *Node) dial(ctx context.Context, ai peer.AddrInfo, lookup time.Duration) error {
	ctx = network.WithAllowLimitedConn(ctx, "grid")
	if len(ai.Addrs) > 0 || len(n.h.Peerstore().Addrs(ai.ID)) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.h.Connect(cctx, ai)
		cancel()
		if err == nil {
			return nil
		}
		n.log.Debug("dial known addresses", "peer", ai.ID, "err", err)
	}
	fctx, cancel := context.WithTimeout(ctx, lookup)
	defer cancel()
	for {
		found, err := n.disc.DHT().FindPeer(fctx, ai.ID)
		if err == nil {
			if err = n.h.Connect(fctx, found); err == nil {
				return nil
			}
		}
		select {
		case <-fctx.Done():
			return fmt.Errorf("unreachable: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
