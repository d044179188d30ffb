package discovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// Roles a node can advertise.
const (
	RoleHolder = "holder" // keeps secret shares and runs MPC sessions
	RoleDealer = "dealer" // supplies correlated randomness
	RoleHost   = "host"   // serves plain (non-MPC) models
)

// findPeerTimeout bounds the address lookup of one provider.
const findPeerTimeout = 5 * time.Second

// RoleCID is the DHT key under which providers of role advertise:
// CIDv1 raw of sha256("grid/role/<role>").
func RoleCID(role string) (cid.Cid, error) {
	if err := checkRole(role); err != nil {
		return cid.Undef, err
	}
	h, err := mh.Sum([]byte("grid/role/"+role), mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, fmt.Errorf("role %q: hash: %w", role, err)
	}
	return cid.NewCidV1(cid.Raw, h), nil
}

func checkRole(role string) error {
	switch role {
	case RoleHolder, RoleDealer, RoleHost:
		return nil
	}
	return fmt.Errorf("unknown role %q: want %q, %q or %q", role, RoleHolder, RoleDealer, RoleHost)
}

// Advertise announces that this node plays role, as a DHT provider record
// under RoleCID(role). Servers renew it every RepublishInterval. It fails
// when the node has no DHT peer; call WaitReady first.
func (d *Discovery) Advertise(ctx context.Context, role string) error {
	if err := checkRole(role); err != nil {
		return fmt.Errorf("advertise: %w", err)
	}
	if err := d.provideRole(ctx, role); err != nil {
		return err
	}
	d.rolesMu.Lock()
	d.roles[role] = true
	d.rolesMu.Unlock()
	return nil
}

func (d *Discovery) provideRole(ctx context.Context, role string) error {
	c, err := RoleCID(role)
	if err != nil {
		return fmt.Errorf("advertise: %w", err)
	}
	if err := d.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("advertise role %q: %w", role, err)
	}
	return nil
}

// FindPeers returns up to max peers (max <= 0: all found) advertising role,
// this node excluded, with their addresses (looked up in the DHT when the
// provider record has none; peers with no known address are left out).
func (d *Discovery) FindPeers(ctx context.Context, role string, max int) ([]peer.AddrInfo, error) {
	c, err := RoleCID(role)
	if err != nil {
		return nil, fmt.Errorf("find peers: %w", err)
	}
	count := 0
	if max > 0 {
		count = max + 1 // this node may be among the providers
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []peer.AddrInfo
	for ai := range d.dht.FindProvidersAsync(fctx, c, count) {
		if ai.ID == d.h.ID() || max > 0 && len(out) >= max {
			continue // keep draining until the channel closes
		}
		if len(ai.Addrs) == 0 {
			ai.Addrs = d.h.Peerstore().Addrs(ai.ID)
		}
		if len(ai.Addrs) == 0 {
			found, err := d.findPeer(fctx, ai.ID)
			if err != nil {
				d.log.Debug("provider without address", "role", role, "peer", ai.ID, "err", err)
				continue
			}
			ai = found
		}
		out = append(out, ai)
		if max > 0 && len(out) >= max {
			cancel()
		}
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("find %s peers: %w", role, err)
		}
	}
	return out, nil
}

func (d *Discovery) findPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, findPeerTimeout)
	defer cancel()
	ai, err := d.dht.FindPeer(ctx, p)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("find peer %s: %w", p, err)
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, errors.New("no addresses")
	}
	return ai, nil
}

// dhtValidator is the DHT record validator of the grid-model namespace.
type dhtValidator struct{ d *Discovery }

// Validate accepts a record if it opens as a manifest stored under its own
// key and its owner is not contradicted by the registry (name ownership).
// Freshness is Select's job: the DHT compares versions itself.
func (v dhtValidator) Validate(key string, value []byte) error {
	m, err := Open(value)
	if err != nil {
		v.d.refused(sourceDHT, "", nil, err)
		return err
	}
	if key != DHTKey(m.ID) {
		err := fmt.Errorf("record for %q under key %q: %w", m.ID, key, errBadKey)
		v.d.refused(sourceDHT, "", m, err)
		return err
	}
	if e := v.d.reg.get(m.ID); e != nil && e.m.Owner != m.Owner {
		err := fmt.Errorf("dht record for %q signed by %s, owned by %s: %w", m.ID, m.Owner, e.m.Owner, ErrNameTaken)
		v.d.refused(sourceDHT, "", m, err)
		return err
	}
	return nil
}

// Select picks the newest valid version; ties keep the first.
func (v dhtValidator) Select(key string, vals [][]byte) (int, error) {
	best, bestVersion := -1, uint64(0)
	for i, val := range vals {
		m, err := Open(val)
		if err != nil || key != DHTKey(m.ID) {
			continue
		}
		if e := v.d.reg.get(m.ID); e != nil && e.m.Owner != m.Owner {
			continue
		}
		if best < 0 || m.Version > bestVersion {
			best, bestVersion = i, m.Version
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("select %q: none of %d records is a valid manifest", key, len(vals))
	}
	return best, nil
}
