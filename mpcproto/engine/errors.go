package engine

import (
	"fmt"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// ProtocolError is an error of one party during a session. It names where
// it happened: the party that reports it (Self), the node and op being
// evaluated, the online round, and the peer concerned when a peer sent a
// bad message or went away (Peer, -1 when none).
type ProtocolError struct {
	Self  int
	Node  string
	Op    plan.Op
	Round int
	Peer  int
	Err   error
}

// Error formats the error with its position:
// "party 0: node relu0 (Relu): round 3: party 2: bad message: ...".
func (e *ProtocolError) Error() string {
	s := fmt.Sprintf("party %d", e.Self)
	if e.Node != "" || e.Op != "" {
		s += fmt.Sprintf(": node %s (%s)", e.Node, e.Op)
	}
	if e.Round > 0 {
		s += fmt.Sprintf(": round %d", e.Round)
	}
	if e.Peer >= 0 {
		s += fmt.Sprintf(": party %d", e.Peer)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ProtocolError) Unwrap() error { return e.Err }
