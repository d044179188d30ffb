package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/gridmpc/grid/node"
)

// probeBootstrap fails fast when every bootstrap peer is a TCP address
// at which nothing listens: each refused the connection (ECONNREFUSED),
// which a plain TCP dial learns in a round trip, where waiting for the
// DHT would take bootstrapWait. Any other outcome (a peer that accepts,
// a QUIC or DNS address, a timeout) is left to the normal join.
func probeBootstrap(ctx context.Context, addrs []string) error {
	var refused, at []string
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil || len(ai.Addrs) == 0 {
			return nil
		}
		na, ok := tcpAddr(ai.Addrs[0])
		if !ok {
			return nil
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", na)
		if err == nil {
			conn.Close()
			return nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		refused, at = append(refused, s), append(at, na)
	}
	switch len(refused) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("bootstrap peer %s refused the connection (nothing listens at %s): is its daemon running? (or pass another with --bootstrap or $%s)", refused[0], at[0], envBootstrap)
	}
	return fmt.Errorf("every bootstrap peer refused the connection (nothing listens at %s): are their daemons running? (or pass others with --bootstrap or $%s)", strings.Join(at, ", "), envBootstrap)
}

// tcpAddr returns the host:port of a multiaddr's /ip4|ip6/.../tcp/N part.
func tcpAddr(a multiaddr.Multiaddr) (string, bool) {
	var part multiaddr.Multiaddr
	for _, c := range a {
		part = append(part, c)
		if c.Protocol().Code == multiaddr.P_TCP {
			na, err := manet.ToNetAddr(part)
			if err != nil {
				return "", false
			}
			return na.String(), true
		}
	}
	return "", false
}

// offlineError rewords a session error caused by a peer the client could
// not reach at all (no address on the network, dial failed) to say the
// peer is offline, keeping the error chain.
func offlineError(err error) error {
	var pe *node.PeerError
	if !errors.As(err, &pe) {
		return err
	}
	if !errors.Is(pe.Err, routing.ErrNotFound) && !strings.HasPrefix(pe.Err.Error(), "unreachable") {
		return err
	}
	msg := strings.Replace(err.Error(), pe.Error(), fmt.Sprintf("%s %s is offline (%v)", pe.Role, pe.Peer, pe.Err), 1)
	return &rewordedError{msg: msg, err: err}
}

// rewordedError is err with another message.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }
