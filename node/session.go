package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// sessionIDLen is the length of a session ID in bytes.
const sessionIDLen = 16

// newSessionID returns a fresh random session ID.
func newSessionID() ([]byte, error) {
	id := make([]byte, sessionIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("session id: %w", err)
	}
	return id, nil
}

// holderSession is a holder's state for one session between its accept and
// its end: who the parties and the dealer are, and the rendezvous points for
// the dealer's bundle and the other holders' MPC streams.
type holderSession struct {
	id       []byte
	model    string // the model's ID
	party    int
	holders  []peer.ID
	dealer   peer.ID
	planHash string
	modelKey string // the model version's identity (modelKey)

	// What the engine runs: the plan for the batch, this holder's input
	// share and its stored weight shares.
	plan    *plan.Plan
	batch   int
	input   *tensor.Dense[uint64]
	weights map[string]*tensor.Dense[uint64]

	ctx    context.Context
	cancel context.CancelFunc

	bundle   chan *sessionBundle  // capacity 1: the dealer's delivery
	incoming []chan *framedStream // by party index, capacity 1: streams dialled by lower parties

	mu        sync.Mutex
	gotBundle bool
}

// sessionTable indexes a holder's live sessions by session ID.
type sessionTable struct {
	mu sync.Mutex
	m  map[string]*holderSession
}

func newSessionTable() *sessionTable { return &sessionTable{m: map[string]*holderSession{}} }

// add registers s; a duplicate session ID is refused.
func (t *sessionTable) add(s *holderSession) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := string(s.id)
	if _, dup := t.m[k]; dup {
		return fmt.Errorf("%w: session %s already running", errBadRequest, hex.EncodeToString(s.id))
	}
	t.m[k] = s
	return nil
}

func (t *sessionTable) get(id []byte) *holderSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[string(id)]
}

func (t *sessionTable) remove(s *holderSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[string(s.id)] == s {
		delete(t.m, string(s.id))
	}
}

func (t *sessionTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// cancelAll cancels every live session (on Close).
func (t *sessionTable) cancelAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.m {
		s.cancel()
	}
}

// sessionBundle is what the dealer delivers to a holder: its bundle and,
// for a bundle dealt with weight masks, its mask bundle.
type sessionBundle struct {
	b  *dealer.Bundle
	mb *dealer.MaskBundle
}

// deliverBundle hands the dealer's bundle to the session, once.
func (s *holderSession) deliverBundle(b *sessionBundle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gotBundle {
		return fmt.Errorf("%w: bundle for session %s already delivered", errBadRequest, hex.EncodeToString(s.id))
	}
	s.gotBundle = true
	s.bundle <- b
	return nil
}
