package transport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Counters are one party's traffic figures on an in-memory Network.
type Counters struct {
	MsgsSent, MsgsRecv   int64
	BytesSent, BytesRecv int64
	// Rounds counts communication rounds as seen by this party: for each
	// peer, a Send to it starts a new round when the party has received as
	// many messages from that peer as rounds counted so far on the pair
	// (it has heard the peer's side of every earlier round); Rounds is the
	// largest count over the peers. This is exact for protocols in which
	// every round has each party send each peer one message, whatever the
	// order of the sends and receives within a round.
	Rounds int64
}

// Intercept may inspect, rewrite or drop (by returning false) a message from
// party from to party to before delivery. It runs in the sender's goroutine
// and must be safe for concurrent use.
type Intercept func(from, to int, msg []byte) ([]byte, bool)

// Network is an in-memory network of N parties, with hooks to drop, delay,
// rewrite or cut off a party's messages (modelled on raft's InmemTransport
// and libp2p's mocknet). Its methods are safe for concurrent use.
type Network struct {
	n     int
	boxes [][]chan []byte // boxes[from][to]
	down  []chan struct{}
	once  []sync.Once
	delay []atomic.Int64 // per sender, nanoseconds
	drop  []atomic.Bool  // per sender

	mu        sync.Mutex
	intercept Intercept
	counters  []Counters
	recvCount [][]int64 // [self][peer]: messages received from peer
	pairRound [][]int64 // [self][peer]: rounds counted on the pair
}

// mailboxDepth bounds the queued messages between two parties; a Send to a
// full mailbox waits (or fails when its context is done).
const mailboxDepth = 256

// NewNetwork returns a network of n >= 1 connected parties.
func NewNetwork(n int) *Network {
	if n < 1 {
		n = 1
	}
	nw := &Network{
		n:         n,
		boxes:     make([][]chan []byte, n),
		down:      make([]chan struct{}, n),
		once:      make([]sync.Once, n),
		delay:     make([]atomic.Int64, n),
		drop:      make([]atomic.Bool, n),
		counters:  make([]Counters, n),
		recvCount: make([][]int64, n),
		pairRound: make([][]int64, n),
	}
	for i := range n {
		nw.recvCount[i] = make([]int64, n)
		nw.pairRound[i] = make([]int64, n)
		nw.down[i] = make(chan struct{})
		nw.boxes[i] = make([]chan []byte, n)
		for j := range n {
			nw.boxes[i][j] = make(chan []byte, mailboxDepth)
		}
	}
	return nw
}

// Parties is the number of parties.
func (nw *Network) Parties() int { return nw.n }

// Transport returns party i's endpoint.
func (nw *Network) Transport(i int) *Inmem { return &Inmem{nw: nw, self: i} }

// Transports returns every party's endpoint, indexed by party.
func (nw *Network) Transports() []Transport {
	out := make([]Transport, nw.n)
	for i := range out {
		out[i] = nw.Transport(i)
	}
	return out
}

// Disconnect cuts party i off: its pending and future Sends and Recvs, and
// those of others to or from it, fail with ErrDisconnected.
func (nw *Network) Disconnect(i int) {
	if i >= 0 && i < nw.n {
		nw.once[i].Do(func() { close(nw.down[i]) })
	}
}

// Drop makes the messages sent by party i vanish (on) or flow again (off).
// Its peers then wait for them until their context is done.
func (nw *Network) Drop(i int, on bool) {
	if i >= 0 && i < nw.n {
		nw.drop[i].Store(on)
	}
}

// Delay delivers the messages sent by party i after d (Send blocks for d,
// which keeps the order of messages).
func (nw *Network) Delay(i int, d time.Duration) {
	if i >= 0 && i < nw.n {
		nw.delay[i].Store(int64(d))
	}
}

// SetIntercept installs f (nil removes it) on every message.
func (nw *Network) SetIntercept(f Intercept) {
	nw.mu.Lock()
	nw.intercept = f
	nw.mu.Unlock()
}

// Counters returns party i's traffic so far.
func (nw *Network) Counters(i int) Counters {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if i < 0 || i >= nw.n {
		return Counters{}
	}
	return nw.counters[i]
}

// Inmem is one party's endpoint on a Network; it implements Transport.
type Inmem struct {
	nw   *Network
	self int
}

// Parties is the number of parties on the network.
func (t *Inmem) Parties() int { return t.nw.n }

// Self is this endpoint's party index.
func (t *Inmem) Self() int { return t.self }

func (t *Inmem) checkPeer(op string, peer int) error {
	if peer < 0 || peer >= t.nw.n || peer == t.self {
		return fmt.Errorf("transport: party %d: %s party %d: no such peer", t.self, op, peer)
	}
	return nil
}

func (t *Inmem) isDown(i int) bool {
	select {
	case <-t.nw.down[i]:
		return true
	default:
		return false
	}
}

// Send delivers a copy of msg to party to.
func (t *Inmem) Send(ctx context.Context, to int, msg []byte) error {
	if err := t.checkPeer("send to", to); err != nil {
		return err
	}
	nw := t.nw
	for _, p := range []int{t.self, to} {
		if t.isDown(p) {
			return fmt.Errorf("transport: party %d: send to party %d: party %d: %w", t.self, to, p, ErrDisconnected)
		}
	}
	if d := time.Duration(nw.delay[t.self].Load()); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("transport: party %d: send to party %d: %w", t.self, to, ctx.Err())
		}
	}
	m := append([]byte(nil), msg...)
	nw.mu.Lock()
	c := &nw.counters[t.self]
	if nw.recvCount[t.self][to] >= nw.pairRound[t.self][to] {
		nw.pairRound[t.self][to]++
		c.Rounds = max(c.Rounds, nw.pairRound[t.self][to])
	}
	c.MsgsSent++
	c.BytesSent += int64(len(msg))
	f := nw.intercept
	nw.mu.Unlock()
	deliver := !nw.drop[t.self].Load()
	if f != nil && deliver {
		m, deliver = f(t.self, to, m)
	}
	if !deliver {
		return nil
	}
	select {
	case nw.boxes[t.self][to] <- m:
		return nil
	case <-nw.down[to]:
		return fmt.Errorf("transport: party %d: send to party %d: %w", t.self, to, ErrDisconnected)
	case <-nw.down[t.self]:
		return fmt.Errorf("transport: party %d: send to party %d: self: %w", t.self, to, ErrDisconnected)
	case <-ctx.Done():
		return fmt.Errorf("transport: party %d: send to party %d: %w", t.self, to, ctx.Err())
	}
}

// Recv returns the next message from party from.
func (t *Inmem) Recv(ctx context.Context, from int) ([]byte, error) {
	if err := t.checkPeer("receive from", from); err != nil {
		return nil, err
	}
	nw := t.nw
	var m []byte
	select {
	case m = <-nw.boxes[from][t.self]:
	case <-nw.down[from]:
		// messages sent before the peer left are still delivered
		select {
		case m = <-nw.boxes[from][t.self]:
			break
		default:
			return nil, fmt.Errorf("transport: party %d: receive from party %d: %w", t.self, from, ErrDisconnected)
		}
	case <-nw.down[t.self]:
		return nil, fmt.Errorf("transport: party %d: receive from party %d: self: %w", t.self, from, ErrDisconnected)
	case <-ctx.Done():
		return nil, fmt.Errorf("transport: party %d: receive from party %d: %w", t.self, from, ctx.Err())
	}
	nw.mu.Lock()
	c := &nw.counters[t.self]
	c.MsgsRecv++
	c.BytesRecv += int64(len(m))
	nw.recvCount[t.self][from]++
	nw.mu.Unlock()
	return m, nil
}
