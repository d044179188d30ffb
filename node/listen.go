package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DefaultPort is grid's own TCP and UDP (QUIC) port, the one the default
// (non-test) config listens on. It is not kubo's 4001 nor, as far as we
// know, any other common peer-to-peer daemon's, so a grid node can run
// next to an IPFS node with both defaults.
const DefaultPort = 4301

// ErrAddrInUse is returned by New when a configured listen address is
// taken by another process (or another node of this one).
var ErrAddrInUse = errors.New("address already in use")

// checkListenFree refuses a TCP listen address with a fixed port that
// another socket holds. go-libp2p's TCP transport binds with SO_REUSEPORT,
// so without this check a daemon would silently share a port with another
// process (kubo, another grid daemon) that also sets it; a plain bind,
// without SO_REUSEPORT, fails on such a port. UDP (QUIC) and port 0 are
// left to checkListened.
func checkListenFree(addrs []string) error {
	for _, s := range addrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			continue // Validate reports it
		}
		if _, err := a.ValueForProtocol(multiaddr.P_TCP); err != nil {
			continue
		}
		// The TCP part only (/ip4/X/tcp/N of /ip4/X/tcp/N/ws).
		var tcpPart multiaddr.Multiaddr
		for _, c := range a {
			tcpPart = append(tcpPart, c)
			if c.Protocol().Code == multiaddr.P_TCP {
				break
			}
		}
		if port, _ := a.ValueForProtocol(multiaddr.P_TCP); port == "0" {
			continue
		}
		na, err := manet.ToNetAddr(tcpPart)
		if err != nil {
			continue // not an IP address (dns): libp2p reports it
		}
		l, err := net.Listen(na.Network(), na.String())
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("listen address %s: %w by another process (stop it, or listen elsewhere with --listen)", s, ErrAddrInUse)
			}
			return fmt.Errorf("listen address %s: %w", s, err)
		}
		l.Close()
	}
	return nil
}

// checkListened checks that the host listens on every configured address:
// go-libp2p starts when at least one of them binds and only logs the
// others' failures. A configured address with a fixed port must appear as
// is among the host's listen addresses; with port 0, the host must listen
// on as many addresses as were configured.
func checkListened(h host.Host, addrs []string) error {
	got := h.Network().ListenAddresses()
	have := make([]string, len(got))
	for i, a := range got {
		have[i] = a.String()
	}
	for _, s := range addrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			continue
		}
		fixed := true
		for _, p := range []int{multiaddr.P_TCP, multiaddr.P_UDP} {
			if v, err := a.ValueForProtocol(p); err == nil && v == "0" {
				fixed = false
			}
		}
		if fixed && !slices.Contains(have, a.String()) {
			return fmt.Errorf("listen address %s: could not bind it (%w, or not an address of this machine)", s, ErrAddrInUse)
		}
	}
	if len(got) < len(addrs) {
		return fmt.Errorf("listening on %d of the %d listen addresses %v (only %v): %w, or not an address of this machine", len(got), len(addrs), addrs, have, ErrAddrInUse)
	}
	return nil
}
