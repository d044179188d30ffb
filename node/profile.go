package node

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
)

// Config profiles, after kubo's: what "grid init" writes.
const (
	// ProfileDefault is a node others can reach: TCP and QUIC on every
	// interface at DefaultPort (WebSockets at DefaultPort+1), the HTTP API
	// on 127.0.0.1:DefaultAPIPort, and go-libp2p's NAT tools (Config.NAT).
	ProfileDefault = "default"
	// ProfileTest is a node on this machine's loopback only, on free
	// ports, without NAT tools: what tests, grid demo and the swarm runner
	// use (and what Init writes).
	ProfileTest = "test"
)

// Profiles lists the profiles, ProfileDefault first.
var Profiles = []string{ProfileDefault, ProfileTest}

// DefaultAPIPort is the HTTP API's port in the default profile (kubo's is
// 5001).
const DefaultAPIPort = 5301

// RoleRelay serves circuit relay v2 to peers behind NATs that cannot
// accept connections (limited relayed connections, for hole punching). It
// is not in AllRoles: a node offers it only when asked (--roles), and only
// a node others can reach should (it is declared publicly reachable).
const RoleRelay = "relay"

// validRoles are the roles a config may name.
var validRoles = append(slices.Clone(AllRoles), RoleRelay)

// profileFile holds what a profile sets in a new repo's config file.
type profileFile struct {
	listen []string
	api    string
	nat    bool
}

// profile returns what the named profile writes.
func profile(name string) (profileFile, error) {
	switch name {
	case ProfileTest:
		return profileFile{listen: DefaultConfig().Listen, api: "127.0.0.1:0"}, nil
	case ProfileDefault, "":
		p := strconv.Itoa(DefaultPort)
		ws := strconv.Itoa(DefaultPort + 1)
		return profileFile{
			listen: []string{
				"/ip4/0.0.0.0/tcp/" + p, "/ip6/::/tcp/" + p,
				"/ip4/0.0.0.0/udp/" + p + "/quic-v1", "/ip6/::/udp/" + p + "/quic-v1",
				"/ip4/0.0.0.0/tcp/" + ws + "/ws",
			},
			api: "127.0.0.1:" + strconv.Itoa(DefaultAPIPort),
			nat: true,
		}, nil
	}
	return profileFile{}, fmt.Errorf("init: profile %q is not one of %v", name, Profiles)
}

// InitProfile is Init with a profile (ProfileDefault or ProfileTest) for
// the listen addresses, the API address and the NAT tools.
func InitProfile(repoDir string, bootstrap []string, name string) (peer.ID, error) {
	p, err := profile(name)
	if err != nil {
		return "", err
	}
	return initRepo(repoDir, bootstrap, p)
}

// natOptions are the go-libp2p options for Config.NAT and the relay role:
// AutoNAT v2 (is this address reachable from outside?) and the AutoNAT v1
// service (answering other peers' reachability probes), the circuit relay
// v2 client with autorelay (reserve a slot on a relay among the connected
// peers when private), hole punching (DCUtR: upgrade a relayed connection
// to a direct one) and UPnP/NAT-PMP port mapping; with the relay role, a
// relay service, the node declared publicly reachable. Without either, the
// node can still dial relay addresses (the relay transport). h is set once the host
// exists (autorelay asks for candidates only after that).
func natOptions(cfg Config, h *atomic.Pointer[host.Host]) []libp2p.Option {
	relay := slices.Contains(cfg.Roles, RoleRelay)
	// The circuit relay transport is always on, so that any node (a
	// one-shot client of the test profile too) can dial a peer behind a
	// NAT at its relay address; it relays nothing by itself.
	opts := []libp2p.Option{libp2p.EnableRelay()}
	if relay {
		// go-libp2p serves relaying only once the node is known to be
		// publicly reachable: the relay role declares it is.
		opts = append(opts, libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
	}
	if cfg.NAT {
		opts = append(opts,
			libp2p.EnableAutoNATv2(),
			// The AutoNAT v1 service for the peers: a NATed peer's
			// autorelay starts on v1's reachability verdict (v2 alone never
			// gives one), so without it no peer behind a NAT ever reserves
			// a relay slot (TestNATRelay).
			libp2p.EnableNATService(),
			libp2p.EnableHolePunching(),
			libp2p.NATPortMap(),
			libp2p.EnableAutoRelayWithPeerSource(connectedPeers(h), autorelay.WithMinCandidates(1)),
		)
	}
	return opts
}

// connectedPeers is autorelay's peer source: the peers the host is
// connected to (autorelay keeps those that speak the relay protocol).
func connectedPeers(hp *atomic.Pointer[host.Host]) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		p := hp.Load()
		if p == nil {
			return out
		}
		h := *p
		for _, id := range h.Network().Peers() {
			if len(out) == num {
				break
			}
			out <- peer.AddrInfo{ID: id, Addrs: h.Peerstore().Addrs(id)}
		}
		return out
	}
}
