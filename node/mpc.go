package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/transport"
	"github.com/gridmpc/grid/node/pb"
)

// mpcHelloTimeout bounds the wait for the hello frame of an MPC stream.
const mpcHelloTimeout = 10 * time.Second

// mpcInbox is the number of frames a peer's reader queues ahead of Recv.
const mpcInbox = 4

// streamTransport implements transport.Transport over one libp2p stream per
// pair of holders. Party i dials every party j > i on /grid/mpc/1.0.0 and
// sends an MpcHello; the engine's messages follow as length-delimited
// frames. A reader goroutine per peer drains its stream into a small queue,
// so Send never waits for the peer's Recv. Errors name the peer.
type streamTransport struct {
	self    int
	holders []peer.ID
	streams []*framedStream
	wmu     []sync.Mutex
	inbox   []chan []byte
	rerr    []error // the reader's error, set before its inbox is closed
	done    chan struct{}
	readers sync.WaitGroup

	sent, recv         atomic.Int64 // payload bytes
	msgsSent, msgsRecv atomic.Int64
	onSent             func(int)
	onRecv             func([]byte)
}

var _ transport.Transport = (*streamTransport)(nil)

// Parties implements transport.Transport.
func (t *streamTransport) Parties() int { return len(t.holders) }

// Self implements transport.Transport.
func (t *streamTransport) Self() int { return t.self }

func (t *streamTransport) peerErr(i int, op string, err error) error {
	return &PeerError{Peer: t.holders[i], Role: fmt.Sprintf("holder %d", i),
		Err: fmt.Errorf("%s: %w: %w", op, transport.ErrDisconnected, err)}
}

// Send implements transport.Transport.
func (t *streamTransport) Send(ctx context.Context, to int, msg []byte) error {
	if to < 0 || to >= len(t.holders) || to == t.self {
		return fmt.Errorf("send to party %d: no such peer (self %d, %d parties)", to, t.self, len(t.holders))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st := t.streams[to]
	t.wmu[to].Lock()
	defer t.wmu[to].Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.s.SetWriteDeadline(dl)
	}
	if err := writeFrame(st.s, msg); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return t.peerErr(to, "send", err)
	}
	t.sent.Add(int64(len(msg)))
	t.msgsSent.Add(1)
	if t.onSent != nil {
		t.onSent(len(msg))
	}
	return nil
}

// Recv implements transport.Transport.
func (t *streamTransport) Recv(ctx context.Context, from int) ([]byte, error) {
	if from < 0 || from >= len(t.holders) || from == t.self {
		return nil, fmt.Errorf("recv from party %d: no such peer (self %d, %d parties)", from, t.self, len(t.holders))
	}
	select {
	case m, ok := <-t.inbox[from]:
		if !ok {
			return nil, t.peerErr(from, "recv", t.rerr[from])
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read drains peer i's stream into its inbox until the stream ends.
func (t *streamTransport) read(i int) {
	defer t.readers.Done()
	st := t.streams[i]
	for {
		m, err := st.fr.next(maxMPCFrame)
		if err != nil {
			t.rerr[i] = err
			close(t.inbox[i])
			return
		}
		t.recv.Add(int64(len(m)))
		t.msgsRecv.Add(1)
		if t.onRecv != nil {
			t.onRecv(m)
		}
		select {
		case t.inbox[i] <- m:
		case <-t.done:
			t.rerr[i] = errors.New("session closed")
			close(t.inbox[i])
			return
		}
	}
}

// close ends the transport: a clean close after a successful run, a reset
// (which the other holders see at once) after a failure. It waits for the
// readers.
func (t *streamTransport) close(ok bool) {
	close(t.done)
	for i, st := range t.streams {
		if st == nil || i == t.self {
			continue
		}
		if ok {
			_ = st.s.Close()
		} else {
			_ = st.s.Reset()
		}
	}
	waited := make(chan struct{})
	go func() { t.readers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
		for _, st := range t.streams {
			if st != nil {
				_ = st.s.Reset()
			}
		}
		<-waited
	}
}

// connectMesh builds the session's transport: it dials the holders after
// this one and waits for the streams of the holders before it. On failure
// every opened stream is reset and the error names the peer.
func (n *Node) connectMesh(ctx context.Context, sess *holderSession) (*streamTransport, error) {
	N := len(sess.holders)
	t := &streamTransport{
		self: sess.party, holders: sess.holders,
		streams: make([]*framedStream, N), wmu: make([]sync.Mutex, N),
		inbox: make([]chan []byte, N), rerr: make([]error, N), done: make(chan struct{}),
		onSent: func(b int) { n.met.bytesSent.WithLabelValues("mpc").Add(float64(b)) },
		onRecv: func(b []byte) {
			n.met.bytesRecv.WithLabelValues("mpc").Add(float64(len(b)))
			n.record("mpc", b)
		},
	}
	dl, _ := ctx.Deadline()
	errs := make([]error, N)
	var wg sync.WaitGroup
	for j := range N {
		if j == sess.party {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st *framedStream
			var err error
			if j > sess.party {
				st, err = n.dialMPC(ctx, sess, j)
			} else {
				select {
				case st = <-sess.incoming[j]:
				case <-ctx.Done():
					err = fmt.Errorf("wait for its mpc stream: %w", ctx.Err())
				}
			}
			if err != nil {
				errs[j] = &PeerError{Peer: sess.holders[j], Role: fmt.Sprintf("holder %d", j), Err: err}
				return
			}
			if !dl.IsZero() {
				_ = st.s.SetDeadline(dl)
			}
			t.streams[j] = st
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// Our own session ended (client left, timeout, shutdown): no
			// peer is to blame.
			err = fmt.Errorf("connect holders: %w", cerr)
			errs = []error{err}
		}
		for _, st := range t.streams {
			if st != nil {
				_ = st.s.Reset()
			}
		}
		for _, e := range errs {
			if e != nil {
				return nil, e
			}
		}
	}
	for j := range N {
		if j == sess.party {
			continue
		}
		t.inbox[j] = make(chan []byte, mpcInbox)
		t.readers.Add(1)
		go t.read(j)
	}
	return t, nil
}

// dialMPC opens the stream to holder j and sends the hello.
func (n *Node) dialMPC(ctx context.Context, sess *holderSession, j int) (*framedStream, error) {
	s, err := n.openStream(ctx, sess.holders[j], ProtoMPC, "open mpc stream")
	if err != nil {
		return nil, err
	}
	if err := s.Scope().SetService(svcMPC); err != nil {
		s.Reset()
		return nil, fmt.Errorf("mpc stream: %w", err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(mpcHelloTimeout))
	if err := writeMsg(s, &pb.MpcHello{Session: sess.id, From: uint32(sess.party), To: uint32(j)}); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send mpc hello: %w", err)
	}
	return &framedStream{s: s, fr: newFrameReader(s)}, nil
}

// handleMPC accepts a stream dialled by a lower-indexed holder of one of our
// sessions and hands it to the session.
func (n *Node) handleMPC(s network.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(mpcHelloTimeout))
	fr := newFrameReader(s)
	var hello pb.MpcHello
	if err := fr.readMsg(&hello, maxControlFrame); err != nil {
		n.log.Debug("mpc hello", "remote", s.Conn().RemotePeer(), "err", err)
		s.Reset()
		return
	}
	sess := n.sessions.get(hello.Session)
	from, to := int(hello.From), int(hello.To)
	switch {
	case sess == nil:
		n.log.Debug("mpc stream for an unknown session", "remote", s.Conn().RemotePeer())
	case to != sess.party || from >= to || from < 0:
		n.log.Debug("mpc stream with bad parties", "from", from, "to", to, "self", sess.party)
	case sess.holders[from] != s.Conn().RemotePeer():
		n.log.Warn("mpc stream from a peer not in the session", "remote", s.Conn().RemotePeer(), "claims", from)
	default:
		_ = s.SetReadDeadline(time.Time{})
		select {
		case sess.incoming[from] <- &framedStream{s: s, fr: fr}:
			return
		default:
			n.log.Debug("duplicate mpc stream", "from", from)
		}
	}
	n.met.errors.WithLabelValues("bad_request").Inc()
	s.Reset()
}
