package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/node/pb"
)

// The two halves every stream protocol shares: call, a client's request
// and reply, and serve, the preamble of a handler.

// framedStream is a stream with its (buffering) frame reader: a stream has
// exactly one.
type framedStream struct {
	s  network.Stream
	fr *frameReader
}

// An exchange is one request and its reply on a new client stream. The
// step names are what the errors of each step say.
type exchange struct {
	proto            protocol.ID
	open, send, read string // e.g. "open session stream", "send request", "read accept"
	limit            int    // cap of the reply frame
	metric           string // bytes-sent label of the request's payload ("" none)
	closeWrite       bool   // half-close after the request: the peer reads to EOF
	ctxErr           bool   // a read that fails once ctx has ended reports "session: " and ctx's error
}

// The exchanges of the client side of the protocols.
var (
	// sessionExchange opens a session with a holder (InferRequest <- Status).
	sessionExchange = exchange{proto: ProtoInfer, open: "open session stream", send: "send request", read: "read accept",
		limit: maxControlFrame, metric: "infer"}
	// dealExchange asks a dealer to deal a session (DealRequest <- Status).
	dealExchange = exchange{proto: ProtoDealer, open: "open dealer stream", send: "send deal request", read: "read deal status",
		limit: maxControlFrame}
	// bundleExchange delivers a holder its bundle (BundleDelivery <- Status).
	bundleExchange = exchange{proto: ProtoDealer, open: "open stream", send: "send", read: "read status",
		limit: maxControlFrame, metric: "dealer"}
	// plainExchange queries a plain-mode host (PlainRequest <- PlainResult).
	plainExchange = exchange{proto: ProtoPlain, open: "open stream", send: "send request", read: "read result",
		limit: maxTensorFrame, ctxErr: true}
	// dropExchange asks a holder to drop an upload (UploadHeader{drop} <- Status).
	dropExchange = exchange{proto: ProtoShares, open: "open stream", send: "send", read: "read status",
		limit: maxControlFrame, closeWrite: true}
)

// openStream makes sure p is reachable (ensureAddrs), opens a stream of
// proto to it and gives the stream ctx's deadline; what names the stream
// in the error of NewStream ("open stream").
func (n *Node) openStream(ctx context.Context, p peer.ID, proto protocol.ID, what string) (network.Stream, error) {
	if err := n.ensureAddrs(ctx, p); err != nil {
		return nil, err
	}
	// A peer behind a NAT may be reachable only through a relay (a
	// limited connection, within the relay's data and time limits) until
	// hole punching gives a direct one: every grid protocol may use it.
	s, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, what), p, proto)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	return s, nil
}

// call runs one exchange with peer p: ensure its addresses, open a stream,
// give it ctx's deadline, write req, read the reply into resp and turn the
// reply's status (resp itself, or the Status it carries) into an error.
// The stream dies with ctx while the call runs. On success the stream is
// returned open with its reader, for a caller that reads more (a session's
// result); the caller closes it. Errors are not wrapped in a PeerError:
// the caller knows the peer's role.
func (n *Node) call(ctx context.Context, p peer.ID, x exchange, req, resp proto.Message) (*framedStream, error) {
	s, err := n.openStream(ctx, p, x.proto, x.open)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := writeMsg(s, req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("%s: %w", x.send, err)
	}
	if b := payloadSize(req); x.metric != "" && b > 0 {
		n.met.bytesSent.WithLabelValues(x.metric).Add(float64(b))
	}
	if x.closeWrite {
		_ = s.CloseWrite()
	}
	fs := &framedStream{s: s, fr: newFrameReader(s)}
	if err := fs.fr.readMsg(resp, x.limit); err != nil {
		s.Reset()
		if x.ctxErr && ctx.Err() != nil {
			return nil, fmt.Errorf("session: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", x.read, err)
	}
	if err := errorFromStatus(statusOf(resp)); err != nil {
		s.Close()
		return nil, err
	}
	return fs, nil
}

// statusOf is a reply's status: the reply itself, or the one it carries.
func statusOf(m proto.Message) *pb.Status {
	switch m := m.(type) {
	case *pb.Status:
		return m
	case interface{ GetStatus() *pb.Status }:
		return m.GetStatus()
	}
	return nil
}

// payloadSize is the tensor or bundle bytes a request carries, what the
// bytes-sent metric counts.
func payloadSize(m proto.Message) int {
	switch m := m.(type) {
	case *pb.InferRequest:
		return len(m.GetInput().GetData())
	case *pb.DealerMessage:
		return len(m.GetBundle().GetBundle())
	}
	return 0
}

// serve wraps a stream handler with what every /grid handler does first: a
// panic resets the stream and is logged (no panic crosses the network
// boundary), and the stream joins service svc's resource-manager scope (a
// stream the scope refuses is reset).
func (n *Node) serve(svc string, h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		defer n.resetOnPanic(s)
		if err := s.Scope().SetService(svc); err != nil {
			s.Reset()
			return
		}
		h(s)
	}
}

// serveRequest is serve for a session request (infer, plain) served in
// role: the stream is accepted (acceptRequest) before h gets the request
// and the stream's reader, and the serving slot is freed when h returns.
// The session is counted as started in roleOf(req) once the request is
// read (a holder's part in a dealer's warm session is not an inference),
// in role when it is refused before.
func serveRequest[R any, PR interface {
	*R
	proto.Message
}](n *Node, svc, role string, roleOf func(PR) string, h func(s network.Stream, fr *frameReader, req PR)) network.StreamHandler {
	return n.serve(svc, func(s network.Stream) {
		req := PR(new(R))
		fr, release, ok := n.acceptRequest(s, svc, role, req)
		if !ok {
			return
		}
		defer release()
		n.met.sessionsStarted.WithLabelValues(roleOf(req)).Inc()
		h(s, fr, req)
	})
}

// acceptRequest is the preamble of a session request (infer, plain) served
// in role: the session's deadline, a serving slot (refused with ErrBusy
// beyond MaxSessions) and the request read into req within the service's
// and the sender's memory (readReserved). ok is false when the request was
// refused or unreadable (the stream is answered or reset and counted);
// otherwise release frees the slot and fr reads what follows. A refused
// or unreadable request counts as a session started and failed in role.
func (n *Node) acceptRequest(s network.Stream, svc, role string, req proto.Message) (fr *frameReader, release func(), ok bool) {
	_ = s.SetDeadline(time.Now().Add(n.cfg.SessionTimeout))
	// The slot is taken before the request is read, so at most MaxSessions
	// requests are buffered, each within the service's memory limit and
	// the sender's share of it.
	release, err := n.takeSlot()
	if err != nil {
		n.met.sessionsStarted.WithLabelValues(role).Inc()
		n.refuse(s, role, err)
		return nil, nil, false
	}
	fr = newFrameReader(s)
	if err := n.readReserved(fr, svc, s.Conn().RemotePeer(), maxTensorFrame, req); err != nil {
		n.log.Debug("session request", "remote", s.Conn().RemotePeer(), "protocol", s.Protocol(), "err", err)
		n.met.errors.WithLabelValues("bad_request").Inc()
		n.met.sessionsStarted.WithLabelValues(role).Inc()
		n.met.sessionsFailed.WithLabelValues(role).Inc()
		release()
		s.Reset()
		return nil, nil, false
	}
	return fr, release, true
}

// takeSlot reserves one of MaxSessions serving slots, or fails with ErrBusy.
func (n *Node) takeSlot() (release func(), err error) {
	select {
	case n.slots <- struct{}{}:
		n.met.sessionsActive.Inc()
		return func() { <-n.slots; n.met.sessionsActive.Dec() }, nil
	default:
		n.met.busy.Inc()
		n.met.errors.WithLabelValues("busy").Inc()
		return nil, fmt.Errorf("%w (%d running)", ErrBusy, cap(n.slots))
	}
}

// refuse answers a request with an error status and counts it.
func (n *Node) refuse(s network.Stream, role string, err error) {
	n.log.Info("request refused", "remote", s.Conn().RemotePeer(), "protocol", s.Protocol(), "err", err)
	n.met.sessionsFailed.WithLabelValues(role).Inc()
	if !errors.Is(err, ErrBusy) {
		n.met.errors.WithLabelValues(errorKind(err)).Inc()
	}
	_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if writeMsg(s, statusFromError(err)) != nil {
		s.Reset()
		return
	}
	s.Close()
}

// resetOnPanic turns a panic in a stream handler into a reset stream and a
// logged error: no panic crosses the network boundary.
func (n *Node) resetOnPanic(s network.Stream) {
	if r := recover(); r != nil {
		n.log.Error("stream handler panic", "protocol", s.Protocol(), "remote", s.Conn().RemotePeer(), "panic", r)
		n.met.errors.WithLabelValues("panic").Inc()
		_ = s.Reset()
	}
}

// peerBytes is a peer list in its wire form.
func peerBytes(ps []peer.ID) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = []byte(p)
	}
	return out
}
