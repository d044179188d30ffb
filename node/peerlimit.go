package node

import (
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// peerLimits is the node's own per-peer admission: the requests each
// remote peer has being read (a slot taken, the request announced but not
// all arrived), and the service memory each peer has reserved. Without it one peer's
// unfinished requests could hold every session slot and a service's whole
// memory until the session timeout. Its methods are safe for concurrent use.
type peerLimits struct {
	maxReading int // requests one peer may have being read at once

	mu      sync.Mutex
	reading map[peer.ID]int
	mem     map[peerService]int64
}

type peerService struct {
	svc string
	p   peer.ID
}

// newPeerLimits lets one peer have half of maxSessions requests (at least
// one) being read at once, so that another peer always finds a slot.
func newPeerLimits(maxSessions int) *peerLimits {
	return &peerLimits{
		maxReading: max(1, maxSessions/2),
		reading:    map[peer.ID]int{},
		mem:        map[peerService]int64{},
	}
}

// startReading counts one more request being read from p, or fails with
// ErrBusy when p already has maxReading. done must be called once the
// request is read (or refused).
func (l *peerLimits) startReading(p peer.ID) (done func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reading[p] >= l.maxReading {
		return nil, fmt.Errorf("%w: peer %s has %d unfinished requests, the per-peer limit", ErrBusy, p, l.reading[p])
	}
	l.reading[p]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.reading[p]--; l.reading[p] <= 0 {
				delete(l.reading, p)
			}
		})
	}, nil
}

// reserve counts size bytes of svc's memory against p's per-peer limit
// (serviceLimits[svc].perMem), or fails when p would go over it. Services
// without peerMem are not counted.
func (l *peerLimits) reserve(svc string, p peer.ID, size int64) (release func(), err error) {
	sl := serviceLimits[svc]
	if !sl.peerMem {
		return func() {}, nil
	}
	limit := sl.perMem
	k := peerService{svc, p}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.mem[k]; size > limit-cur {
		return nil, fmt.Errorf("peer %s has %d bytes reserved in %s, %d more would pass its per-peer limit of %d", p, cur, svc, size, limit)
	}
	l.mem[k] += size
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.mem[k] -= size; l.mem[k] <= 0 {
				delete(l.mem, k)
			}
		})
	}, nil
}

// reserved is the memory p has reserved in svc.
func (l *peerLimits) reserved(svc string, p peer.ID) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mem[peerService{svc, p}]
}
