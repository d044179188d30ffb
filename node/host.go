package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
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

// resourceManager builds libp2p's resource manager with the defaults plus
// service and protocol limits for the /grid protocols: stream counts per
// service and per peer, and memory for the buffered uploads, bundles and
// MPC frames (reserved by the handlers as they read).
func resourceManager(maxSessions int) (network.ResourceManager, error) {
	cfg := rcmgr.DefaultLimits
	sessions := maxSessions + 16
	type lim struct {
		svc    string
		proto  protocol.ID
		in     int   // inbound streams, whole service
		perIn  int   // inbound streams per peer
		mem    int64 // bytes, whole service
		perMem int64
	}
	for _, l := range []lim{
		// Session streams get room beyond MaxSessions, so that a holder's own
		// "busy" answer, not a stream reset, is what an overloaded client sees.
		{svcShares, ProtoShares, 64, 8, 4 << 30, 2 << 30},
		{svcInfer, ProtoInfer, 4 * sessions, 4 * sessions, 1 << 30, 512 << 20},
		{svcMPC, ProtoMPC, 8 * sessions, 2 * sessions, 2 << 30, 1 << 30},
		{svcDealer, ProtoDealer, 4 * sessions, 4 * sessions, 2 << 30, 1 << 30},
		{svcPlain, ProtoPlain, 4 * sessions, 4 * sessions, 1 << 30, 512 << 20},
	} {
		base := rcmgr.BaseLimit{StreamsInbound: l.in, StreamsOutbound: 4 * l.in, Streams: 5 * l.in, Memory: l.mem}
		peerBase := rcmgr.BaseLimit{StreamsInbound: l.perIn, StreamsOutbound: 4 * l.perIn, Streams: 5 * l.perIn, Memory: l.perMem}
		cfg.AddServiceLimit(l.svc, base, rcmgr.BaseLimitIncrease{})
		cfg.AddServicePeerLimit(l.svc, peerBase, rcmgr.BaseLimitIncrease{})
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

// newHost builds the libp2p host: TCP and QUIC, Noise and TLS, yamux, the
// resource and connection managers, no relay, no NAT port mapping (and no
// mDNS: peers come from the bootstrap list and the DHT).
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
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
	}
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
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, rm, nil
}

// reserveService reserves size bytes of the service's memory (and the
// system's) with the resource manager, for a buffer larger than a single
// stream may hold (libp2p caps a stream scope at 16 MiB). The service limit
// bounds what all peers together may make the node buffer.
func (n *Node) reserveService(svc string, size int) (release func(), err error) {
	var span network.ResourceScopeSpan
	err = n.rm.ViewService(svc, func(sc network.ServiceScope) error {
		var err error
		span, err = sc.BeginSpan()
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := span.ReserveMemory(size, network.ReservationPriorityHigh); err != nil {
		span.Done()
		return nil, err
	}
	return span.Done, nil
}

// readReserved reads one message of at most max bytes, its size reserved
// from the service's memory for the time of the decode.
func (n *Node) readReserved(fr *frameReader, svc string, max int, m proto.Message) error {
	release := func() {}
	defer func() { release() }()
	b, err := fr.nextReserve(max, func(size int) error {
		r, err := n.reserveService(svc, size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBusy, err)
		}
		release = r
		return nil
	})
	if err != nil {
		return err
	}
	return protoUnmarshal(b, m)
}
