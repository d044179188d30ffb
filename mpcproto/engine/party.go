package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// party is one party's state during a session.
type party struct {
	ctx    context.Context
	cancel context.CancelFunc
	t      transport.Transport
	n      int
	self   int
	enc    fixed.Encoding
	src    dealer.Provider
	masks  *WeightMasks // nil without weight masks
	zs     *zeroSharing // output re-randomisation; nil in OpenMasks
	// gates: comparisons take sign gates (two parties, dealer.UsesGates)
	gates bool
	// observe, when set (tests), sees every opened vector after its round
	observe observer

	node *plan.Node // being evaluated, for errors and material requests

	round     int
	msgs      int64
	bytesSent int64
	bytesRecv int64
}

// observer sees the vectors a party opens in a round (tests record the
// holders' view with it): whether each is XOR-shared, and its opened words,
// which it must not modify.
type observer func(self, round int, xor []bool, vals [][]uint64)

// headerSize is the size of a round message's header: the round number and
// the number of 64-bit words that follow, both uint32 little-endian.
const headerSize = 8

// MaxWords bounds the words one party may send another in one round
// (1 GiB; the first round's messages may carry the 4 words of a
// re-randomisation seed on top): a larger exchange is refused before
// anything is allocated.
const MaxWords = 1 << 27

// fail wraps err with the party's current position.
func (p *party) fail(peer int, err error) error {
	pe := &ProtocolError{Self: p.self, Round: p.round, Peer: peer, Err: err}
	if p.node != nil {
		pe.Node, pe.Op = p.node.Name, p.node.Op
	}
	return pe
}

func (p *party) failf(format string, args ...any) error {
	return p.fail(-1, fmt.Errorf(format, args...))
}

// vec is a vector to open: its words and whether it is XOR-shared.
type vec struct {
	d   []uint64
	xor bool
}

func arith(d []uint64) vec { return vec{d: d} }
func xorv(d []uint64) vec  { return vec{d: d, xor: true} }

// open reveals shared vectors to every party in one round: each party sends
// its shares of all of them (one message per peer: header, then the words
// of every vector in turn), then adds (or XORs) every party's shares. The
// first round's messages to later parties also carry the output
// re-randomisation seeds (see rerand.go).
func (p *party) open(vs ...vec) ([][]uint64, error) {
	p.round++
	total := 0
	for _, v := range vs {
		total += len(v.d)
	}
	if total > MaxWords {
		return nil, p.failf("round payload of %d words exceeds %d", total, MaxWords)
	}
	msg := make([]byte, headerSize+8*total)
	binary.LittleEndian.PutUint32(msg, uint32(p.round))
	putWordCount(msg, total)
	off := headerSize
	out := make([][]uint64, len(vs))
	for k, v := range vs {
		for _, w := range v.d {
			binary.LittleEndian.PutUint64(msg[off:], w)
			off += 8
		}
		out[k] = append([]uint64(nil), v.d...) // own share first
	}
	msgs := make([][]byte, p.n)
	for j := range p.n {
		if j != p.self {
			msgs[j] = p.messageTo(msg, total, j)
		}
	}
	var wg sync.WaitGroup
	sendErrs := make([]error, p.n)
	for j := range p.n {
		if j == p.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendErrs[j] = p.t.Send(p.ctx, j, msgs[j])
		}()
	}
	recvd, err := p.receive(out, vs, total)
	if err != nil {
		p.cancel() // unblock our pending sends
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for j, e := range sendErrs {
		if e != nil {
			return nil, p.fail(j, fmt.Errorf("send: %w", e))
		}
		p.bytesSent += int64(len(msgs[j]))
	}
	p.msgs += int64(p.n - 1)
	p.bytesRecv += recvd
	if p.zs != nil {
		p.zs.pending = false
	}
	if p.observe != nil {
		xor := make([]bool, len(vs))
		for k, v := range vs {
			xor[k] = v.xor
		}
		p.observe(p.self, p.round, xor, out)
	}
	return out, nil
}

// receive takes every peer's message of the round and accumulates its
// shares into out; it returns the bytes received.
func (p *party) receive(out [][]uint64, vs []vec, total int) (int64, error) {
	var recvd int64
	for j := range p.n {
		if j == p.self {
			continue
		}
		m, err := p.t.Recv(p.ctx, j)
		if err != nil {
			return recvd, p.fail(j, fmt.Errorf("receive: %w", err))
		}
		if err := p.checkMessage(m, total+p.seedWordsFrom(j)); err != nil {
			return recvd, p.fail(j, err)
		}
		recvd += int64(len(m))
		accumulate(out, vs, m[headerSize:])
		p.takeSeed(m, total, j)
	}
	return recvd, nil
}

// putWordCount writes a round message's word count into its header.
func putWordCount(msg []byte, words int) {
	binary.LittleEndian.PutUint32(msg[4:], uint32(words))
}

// accumulate adds (or XORs) a peer's shares, little-endian words in b, into
// the opened vectors.
func accumulate(out [][]uint64, vs []vec, b []byte) {
	off := 0
	for k, v := range vs {
		dst := out[k]
		src := b[off : off+8*len(dst)]
		if v.xor {
			for i := range dst {
				dst[i] ^= binary.LittleEndian.Uint64(src[8*i:])
			}
		} else {
			for i := range dst {
				dst[i] += binary.LittleEndian.Uint64(src[8*i:])
			}
		}
		off += 8 * len(dst)
	}
}

// errBadMessage is wrapped by the errors about malformed round messages.
var errBadMessage = errors.New("bad message")

// checkMessage checks a peer's round message: the round, the announced
// word count and the length.
func (p *party) checkMessage(m []byte, want int) error {
	if len(m) < headerSize {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errBadMessage, len(m), headerSize)
	}
	round, count := binary.LittleEndian.Uint32(m), binary.LittleEndian.Uint32(m[4:])
	if int(round) != p.round {
		return fmt.Errorf("%w: message of round %d, expected round %d", errBadMessage, round, p.round)
	}
	if int(count) != want || len(m) != headerSize+8*want {
		return fmt.Errorf("%w: %d bytes announcing %d words, expected %d words (%d bytes)",
			errBadMessage, len(m), count, want, headerSize+8*want)
	}
	return nil
}

// next takes the material for req from the provider and checks it (any
// Provider may serve the engine) before its views are read.
func (p *party) next(req dealer.Request) (*dealer.Material, error) {
	if p.node != nil {
		req.Node = p.node.Name
	}
	m, err := p.src.Next(req)
	if err != nil {
		return nil, p.fail(-1, err)
	}
	if err := m.Check(req); err != nil {
		return nil, p.fail(-1, err)
	}
	return m, nil
}

// lead reports whether this party adds public constants (party 0 does).
func (p *party) lead() bool { return p.self == 0 }
