package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// errAborted marks a holder's error caused by the client's own teardown.
var errAborted = errors.New("aborted by the client")

// firstError is the first non-nil error of errs, nil if none.
func firstError(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// blame picks the error to report when a session fails:
//  1. a holder whose stream to the client broke, or that reported a failure
//     of its own, is the culprit;
//  2. else the peer the holders' reports name most often, leaving out the
//     reporters themselves (a holder that reports is alive: the ones that
//     saw a neighbour reset because of the real failure name the neighbour);
//  3. else the first error (timeouts, refusals).
func blame(errs []error, holders []peer.ID) error {
	var first error
	votes := map[peer.ID]int{}
	reporters := map[peer.ID]bool{}
	var reported error
	for i, e := range errs {
		if e == nil || e == errAborted {
			continue
		}
		if first == nil {
			first = e
		}
		var rb *remoteBlame
		if errors.As(e, &rb) {
			votes[rb.peer]++
			reporters[holders[i]] = true
			if reported == nil {
				reported = e
			}
			continue
		}
		if errors.Is(e, context.DeadlineExceeded) || errors.Is(e, context.Canceled) {
			continue
		}
		var re *remoteError
		if !errors.As(e, &re) {
			return e // this holder's connection broke or it failed on its own
		}
	}
	best, bestVotes := peer.ID(""), 0
	for _, skipReporters := range []bool{true, false} {
		for _, p := range holders {
			if v := votes[p]; v > bestVotes && !(skipReporters && reporters[p]) {
				best, bestVotes = p, v
			}
		}
		if bestVotes > 0 {
			break
		}
	}
	for p, v := range votes { // a blamed peer that is not a holder (the dealer)
		if bestVotes == 0 && v > 0 {
			best, bestVotes = p, v
		}
	}
	if bestVotes > 0 {
		role := "peer"
		if i := slices.Index(holders, best); i >= 0 {
			role = fmt.Sprintf("holder %d", i)
		}
		return &PeerError{Peer: best, Role: role, Err: fmt.Errorf("failed during the session (reported by %d holder(s)): %w", bestVotes, reported)}
	}
	return first
}
