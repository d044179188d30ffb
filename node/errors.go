package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node/pb"
)

var (
	// ErrUnknownModel is returned when no manifest names the model, or a
	// holder does not hold it.
	ErrUnknownModel = errors.New("unknown model")
	// ErrBadInput is returned when an input does not fit the model (shape,
	// values); nothing was sent to any peer. The CLI maps it to exit code 2.
	ErrBadInput = errors.New("bad input")
	// ErrBusy is returned when a holder or host already serves its
	// MaxSessions sessions.
	ErrBusy = errors.New("busy: too many concurrent sessions")
	// ErrRemoteInferenceDisabled is returned when the model was published
	// with NoRemoteInference: its holders refuse queries.
	ErrRemoteInferenceDisabled = errors.New("remote inference disabled for this model")
	// ErrDamaged is returned when a holder's stored shares of the model fail
	// their checksum: it refuses to answer rather than answer wrong.
	ErrDamaged = errors.New("stored shares damaged")
	// ErrUntrustedDealer is returned when a session's dealer is neither the
	// model's owner nor a dealer its signed manifest names: holders refuse
	// such a session, and a client never asks such a dealer.
	ErrUntrustedDealer = errors.New("dealer not trusted by the model's owner")
	// ErrNoDealer is returned when none of the dealers a model's manifest
	// names is reachable (and this client is not the owner, who may deal).
	ErrNoDealer = errors.New("no trusted dealer reachable")
	// ErrMaskReuse is returned by a holder asked to open a weight mask set
	// it already opened against other shares.
	ErrMaskReuse = errors.New("weight mask set reused")
	// ErrNotOwner is returned by Unpublish for a model this node did not sign.
	ErrNotOwner = errors.New("not the model's owner")
	// ErrModelExists is returned by Publish for a model id this node has
	// published already (a live manifest), unless PublishOptions.Update
	// asks to replace it; the error is a *ModelExistsError.
	ErrModelExists = errors.New("model exists")
)

// ModelExistsError is Publish's refusal to replace a live model without
// PublishOptions.Update: it carries the live manifest.
type ModelExistsError struct {
	Manifest *discovery.Manifest // the live manifest of the model
}

func (e *ModelExistsError) Error() string {
	m := e.Manifest
	return fmt.Sprintf("%v: version %d, input %v, output %v, plan %s", ErrModelExists, m.Version, m.InputShape, m.OutputShape, shortHash(m.PlanHash))
}

// Unwrap returns ErrModelExists.
func (e *ModelExistsError) Unwrap() error { return ErrModelExists }

// shortHash is the first 8 characters of a hex hash, as messages show it.
func shortHash(h string) string { return h[:min(len(h), 8)] }

// PeerError is a failure attributed to one remote peer: the peer that
// refused, disconnected or timed out.
type PeerError struct {
	Peer peer.ID // the peer at fault
	Role string  // its part: "holder 2", "dealer", "host"
	Err  error
}

func (e *PeerError) Error() string { return fmt.Sprintf("%s %s: %v", e.Role, e.Peer, e.Err) }

// Unwrap returns the underlying error.
func (e *PeerError) Unwrap() error { return e.Err }

// statusOK is the accepting status.
var statusOK = &pb.Status{Code: pb.Code_OK}

// statusCodes pairs the status codes with the sentinels they carry, in
// the order statusFromError tests them.
var statusCodes = []struct {
	code pb.Code
	err  error
}{
	{pb.Code_BUSY, ErrBusy},
	{pb.Code_UNKNOWN_MODEL, ErrUnknownModel},
	{pb.Code_REMOTE_DISABLED, ErrRemoteInferenceDisabled},
	{pb.Code_DAMAGED, ErrDamaged},
	{pb.Code_UNTRUSTED_DEALER, ErrUntrustedDealer},
	{pb.Code_BAD_REQUEST, errBadRequest},
}

// statusFromError turns a local error into the status sent to a peer: the
// code of its sentinel (ErrBadInput is a bad request), PEER_FAILED naming
// the peer of a PeerError, TIMEOUT, else INTERNAL.
func statusFromError(err error) *pb.Status {
	if err == nil {
		return statusOK
	}
	st := &pb.Status{Code: pb.Code_INTERNAL, Message: err.Error()}
	for _, c := range statusCodes {
		if errors.Is(err, c.err) {
			st.Code = c.code
			return st
		}
	}
	var pe *PeerError
	switch {
	case errors.Is(err, ErrBadInput):
		st.Code = pb.Code_BAD_REQUEST
	case errors.As(err, &pe):
		st.Code = pb.Code_PEER_FAILED
		st.Peer = []byte(pe.Peer)
	case errors.Is(err, context.DeadlineExceeded):
		st.Code = pb.Code_TIMEOUT
	}
	return st
}

// errBadRequest marks a malformed or inconsistent request from a peer.
var errBadRequest = errors.New("bad request")

// errorFromStatus turns a peer's status into an error (nil for OK). The
// sentinel matching the code is wrapped so errors.Is works on the client.
func errorFromStatus(st *pb.Status) error {
	if st == nil {
		return fmt.Errorf("%w: missing status", errBadRequest)
	}
	var base error
	switch st.Code {
	case pb.Code_OK:
		return nil
	case pb.Code_TIMEOUT:
		base = context.DeadlineExceeded
	case pb.Code_PEER_FAILED:
		if id, err := peer.IDFromBytes(st.Peer); err == nil {
			return &remoteBlame{peer: id, msg: st.Message}
		}
		return errors.New(st.Message)
	}
	for _, c := range statusCodes {
		if c.code == st.Code {
			base = c.err
		}
	}
	if base == nil {
		return errors.New(st.Message)
	}
	if st.Message == "" {
		return base
	}
	return &remoteError{base: base, msg: st.Message}
}

// remoteError is an error reported by a peer, matching a local sentinel.
type remoteError struct {
	base error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }

// remoteBlame is a peer's report that another peer failed.
type remoteBlame struct {
	peer peer.ID
	msg  string
}

func (e *remoteBlame) Error() string { return e.msg }
