package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
	"sync/atomic"
	"time"
)

// Protocol IDs of the node's streams.
const (
	// ProtoShares uploads a holder's shares (owner -> holder).
	ProtoShares protocol.ID = "/grid/shares/1.0.0"
	// ProtoInfer opens an inference session (client -> holder).
	ProtoInfer protocol.ID = "/grid/infer/1.0.0"
	// ProtoMPC carries a session's rounds (holder <-> holder).
	ProtoMPC protocol.ID = "/grid/mpc/1.0.0"
	// ProtoDealer carries deal requests (client -> dealer) and bundles
	// (dealer or client -> holder).
	ProtoDealer protocol.ID = "/grid/dealer/1.0.0"
	// ProtoPlain queries a plain-mode host (client -> host).
	ProtoPlain protocol.ID = "/grid/plain/1.0.0"
)

// Resource-manager service names, one per protocol.
const (
	svcShares = "grid.shares"
	svcInfer  = "grid.infer"
	svcMPC    = "grid.mpc"
	svcDealer = "grid.dealer"
	svcPlain  = "grid.plain"
)

// serviceLimit is the resource manager's limit of one /grid service (and
// its protocol): inbound streams and memory, for the whole service and per
// remote peer.
type serviceLimit struct {
	proto  protocol.ID
	in     int   // inbound streams, whole service (times the session factor when sessions)
	perIn  int   // inbound streams per peer (likewise)
	mem    int64 // bytes, whole service
	perMem int64 // bytes per peer, enforced by the resource manager on stream reservations
	// sessions scales in and perIn by MaxSessions+16.
	sessions bool
	// peerMem makes reserveService hold each peer to perMem too (a
	// service-scope span is not charged to the peer). Not for the dealer
	// service: one dealer legitimately sends the bundles of many sessions.
	peerMem bool
}

// serviceLimits are the limits of the /grid services. Session streams get
// room beyond MaxSessions, so that a holder's own "busy" answer, not a
// stream reset, is what an overloaded client sees. A peer may reserve a
// quarter of the infer and plain services' memory (four requests of the
// largest size): one peer's unfinished requests cannot take it all.
var serviceLimits = map[string]serviceLimit{
	svcShares: {ProtoShares, 64, 8, 4 << 30, 2 << 30, false, true},
	svcInfer:  {ProtoInfer, 4, 4, 1 << 30, 256 << 20, true, true},
	svcMPC:    {ProtoMPC, 8, 2, 2 << 30, 1 << 30, true, false},
	svcDealer: {ProtoDealer, 4, 4, 2 << 30, 1 << 30, true, false},
	svcPlain:  {ProtoPlain, 4, 4, 1 << 30, 256 << 20, true, true},
}

// resourceManager builds libp2p's resource manager with the defaults plus
// service and protocol limits for the /grid protocols (serviceLimits):
// stream counts per service and per peer, and memory for the buffered
// uploads, bundles and MPC frames (reserved by the handlers as they read).
func resourceManager(maxSessions int) (network.ResourceManager, error) {
	cfg := rcmgr.DefaultLimits
	sessions := maxSessions + 16
	for svc, l := range serviceLimits {
		in, perIn := l.in, l.perIn
		if l.sessions {
			in, perIn = in*sessions, perIn*sessions
		}
		base := rcmgr.BaseLimit{StreamsInbound: in, StreamsOutbound: 4 * in, Streams: 5 * in, Memory: l.mem}
		peerBase := rcmgr.BaseLimit{StreamsInbound: perIn, StreamsOutbound: 4 * perIn, Streams: 5 * perIn, Memory: l.perMem}
		cfg.AddServiceLimit(svc, base, rcmgr.BaseLimitIncrease{})
		cfg.AddServicePeerLimit(svc, peerBase, rcmgr.BaseLimitIncrease{})
		cfg.AddProtocolLimit(l.proto, base, rcmgr.BaseLimitIncrease{})
		cfg.AddProtocolPeerLimit(l.proto, peerBase, rcmgr.BaseLimitIncrease{})
	}
	// The system memory limit must cover the services' reservations.
	cfg.SystemBaseLimit.Memory = 8 << 30
	limiter := rcmgr.NewFixedLimiter(cfg.AutoScale())
	rm, err := rcmgr.NewResourceManager(limiter)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// newHost builds the libp2p host: TCP, QUIC and WebSockets (what browsers
// dial: /ip4/.../tcp/N/ws), Noise and TLS, yamux, the resource and
// connection managers, the NAT tools and relaying when Config.NAT or the
// relay role asks (natOptions; else no relay, no port mapping), no mDNS
// (peers come from the bootstrap list and the DHT). A listen address
// another process holds is refused (checkListenFree, checkListened).
func newHost(cfg Config, sk crypto.PrivKey) (host.Host, network.ResourceManager, error) {
	rm, err := resourceManager(cfg.MaxSessions)
	if err != nil {
		return nil, nil, err
	}
	cm, err := connmgr.NewConnManager(32, 96, connmgr.WithGracePeriod(20*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("conn manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
	}
	var hp atomic.Pointer[host.Host]
	opts = append(opts, natOptions(cfg, &hp)...)
	if len(cfg.Listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Listen...))
	}
	if len(cfg.Announce) > 0 {
		announce := make([]multiaddr.Multiaddr, len(cfg.Announce))
		for i, a := range cfg.Announce {
			if announce[i], err = multiaddr.NewMultiaddr(a); err != nil {
				return nil, nil, fmt.Errorf("announce %q: %w", a, err)
			}
		}
		opts = append(opts, libp2p.AddrsFactory(func([]multiaddr.Multiaddr) []multiaddr.Multiaddr { return announce }))
	}
	if err := checkListenFree(cfg.Listen); err != nil {
		rm.Close()
		return nil, nil, err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("libp2p host: %w", err)
	}
	if err := checkListened(h, cfg.Listen); err != nil {
		h.Close()
		rm.Close()
		return nil, nil, err
	}
	hp.Store(&h)
	return h, rm, nil
}

// reserveService reserves size bytes of the service's memory (and the
// system's) with the resource manager on behalf of peer p, for a buffer
// larger than a single stream may hold (libp2p caps a stream scope at
// 16 MiB). The service limit bounds what all peers together may make the
// node buffer; for the services with peerMem set, the per-peer limit
// (serviceLimits), counted here because a service-scope span is not
// charged to the peer, bounds one peer.
func (n *Node) reserveService(svc string, p peer.ID, size int) (release func(), err error) {
	peerRelease, err := n.peers.reserve(svc, p, int64(size))
	if err != nil {
		return nil, err
	}
	var span network.ResourceScopeSpan
	err = n.rm.ViewService(svc, func(sc network.ServiceScope) error {
		var err error
		span, err = sc.BeginSpan()
		return err
	})
	if err != nil {
		peerRelease()
		return nil, err
	}
	if err := span.ReserveMemory(size, network.ReservationPriorityHigh); err != nil {
		span.Done()
		peerRelease()
		return nil, err
	}
	return func() { span.Done(); peerRelease() }, nil
}

// readReserved reads one session request of at most max bytes from peer
// p, its size reserved from the service's memory for the time of the
// decode. A request that has not all arrived with its length (a slow or
// unfinished one, or one over the read buffer) also counts against p's
// requests being read (peerLimits.startReading) until it is in: one peer
// cannot hold more than its part of the session slots with requests it
// does not finish, and a client sending whole requests is never refused
// for sending many at once.
func (n *Node) readReserved(fr *frameReader, svc string, p peer.ID, max int, m proto.Message) error {
	release, doneReading := func() {}, func() {}
	defer func() { release() }()
	b, err := fr.nextReserve(max, func(size int) error {
		if fr.br.Buffered() < size {
			done, err := n.peers.startReading(p)
			if err != nil {
				return err
			}
			doneReading = done
		}
		r, err := n.reserveService(svc, p, size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBusy, err)
		}
		release = r
		return nil
	})
	doneReading()
	if err != nil {
		return err
	}
	return protoUnmarshal(b, m)
}
