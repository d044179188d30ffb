// Package transport defines how the parties of a secure computation exchange
// messages, and ships an in-memory implementation (Network) for tests,
// benchmarks and single-process runs; the node package implements the same
// interface over libp2p streams.
package transport

import (
	"context"
	"errors"
)

// Transport connects one party to the others of a session. Parties are
// numbered 0..Parties()-1.
//
// Contract for implementations:
//  1. Messages from one party to another are delivered whole and in order.
//  2. Send and Recv may be called concurrently, for different peers, from
//     different goroutines; Send must not wait for the receiver to call Recv
//     for messages of reasonable size (the engine sends to all peers while
//     receiving from all peers).
//  3. Send may keep no reference to msg after it returns.
//  4. Both stop and return an error when ctx is done, and return an error
//     wrapping ErrDisconnected when the peer is gone.
type Transport interface {
	// Parties is N, the number of parties in the session.
	Parties() int
	// Self is this party's index, 0..N-1.
	Self() int
	// Send sends msg to party to.
	Send(ctx context.Context, to int, msg []byte) error
	// Recv returns the next message from party from.
	Recv(ctx context.Context, from int) ([]byte, error)
}

// ErrDisconnected is wrapped by the errors of Send and Recv when the peer
// (or this party) has left the session.
var ErrDisconnected = errors.New("party disconnected")
