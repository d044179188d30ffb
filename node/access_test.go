package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// TestHolderAccessControl sends hand-made session requests straight to
// each holder, skipping every check a well-behaved client makes, and
// checks that the holder itself refuses: a model published with
// NoRemoteInference (at every holder), a model it does not hold, a holder
// list or party index other than the signed manifest's, another version, a
// dealer that is one of the holders, an input share of the wrong shape,
// and an MPC stream from a peer that is not in the session.
func TestHolderAccessControl(t *testing.T) {
	s := newTestSwarm(t, 3)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	p, w := plan.Seed()
	open, err := s.client.Publish(ctx, "open", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	private, err := s.client.Publish(ctx, "private", p, w, PublishOptions{Holders: 3, NoRemoteInference: true})
	if err != nil {
		t.Fatal(err)
	}
	var outsider peer.ID // the holder node that does not hold "open"
	for _, h := range s.holders {
		if !containsPeer(open.Holders, h.ID()) {
			outsider = h.ID()
		}
	}
	for _, h := range s.holders {
		if err := waitLookup(ctx, h, "open", "private"); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ps ...peer.ID) [][]byte {
		out := make([][]byte, len(ps))
		for i, p := range ps {
			out[i] = []byte(p)
		}
		return out
	}
	share := encodeWords("input", tensor.New[uint64](2))
	request := func(model string, version uint64, party int, holders [][]byte) *pb.InferRequest {
		sid, err := newSessionID()
		if err != nil {
			t.Fatal(err)
		}
		return &pb.InferRequest{Session: sid, Model: model, Version: version, Party: uint32(party), Holders: holders,
			Dealer: []byte(s.boot.ID()), Batch: 1, Input: share}
	}
	refused := func(t *testing.T, to peer.ID, req *pb.InferRequest, want error, text string) {
		t.Helper()
		c, err := s.client.openSession(ctx, int(req.Party), to, req)
		if err == nil {
			c.s.Reset()
			t.Fatalf("holder %s accepted the session", to)
		}
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Peer != to || (want != nil && !errors.Is(err, want)) || !strings.Contains(err.Error(), text) {
			t.Fatalf("err = %v; want a refusal by %s matching %v and %q", err, to, want, text)
		}
	}

	t.Run("remote inference disabled, at every holder", func(t *testing.T) {
		for i, h := range private.Holders {
			refused(t, h, request("private", private.Version, i, ids(private.Holders...)), ErrRemoteInferenceDisabled, "private")
		}
	})
	t.Run("a model the holder does not hold", func(t *testing.T) {
		// The outsider, put at party 0 of a made-up holder list.
		refused(t, outsider, request("open", open.Version, 0, ids(outsider, open.Holders[1])), errBadRequest, "do not match")
		// With the manifest's list, no party index is the outsider's.
		refused(t, outsider, request("open", open.Version, 0, ids(open.Holders...)), errBadRequest, "is not this peer")
		refused(t, open.Holders[0], request("nosuchmodel", 1, 0, ids(open.Holders...)), ErrUnknownModel, "nosuchmodel")
	})
	t.Run("holders other than the manifest's", func(t *testing.T) {
		refused(t, open.Holders[0], request("open", open.Version, 0, ids(open.Holders[0], outsider)), errBadRequest, "do not match")
		refused(t, open.Holders[0], request("open", open.Version, 0, ids(open.Holders[0], open.Holders[1], outsider)), errBadRequest, "do not match")
		swapped := ids(open.Holders[1], open.Holders[0])
		refused(t, open.Holders[0], request("open", open.Version, 1, swapped), errBadRequest, "do not match")
		refused(t, open.Holders[0], request("open", open.Version, 1, ids(open.Holders...)), errBadRequest, "is not this peer")
	})
	t.Run("another version", func(t *testing.T) {
		refused(t, open.Holders[0], request("open", open.Version-1, 0, ids(open.Holders...)), errBadRequest, "version")
		refused(t, open.Holders[0], request("open", open.Version+1, 0, ids(open.Holders...)), errBadRequest, "version")
	})
	t.Run("dealer is a holder", func(t *testing.T) {
		req := request("open", open.Version, 0, ids(open.Holders...))
		req.Dealer = []byte(open.Holders[1])
		refused(t, open.Holders[0], req, errBadRequest, "dealer")
	})
	t.Run("input share of the wrong shape", func(t *testing.T) {
		req := request("open", open.Version, 0, ids(open.Holders...))
		req.Input = encodeWords("input", tensor.New[uint64](3))
		refused(t, open.Holders[0], req, errBadRequest, "shape")
	})
	t.Run("mpc stream from a peer outside the session", func(t *testing.T) {
		// A real session waits at holder 1 for its bundle; the client, which
		// is not a holder, dials holder 1 claiming to be party 0.
		req := request("open", open.Version, 1, ids(open.Holders...))
		c, err := s.client.openSession(ctx, 1, open.Holders[1], req)
		if err != nil {
			t.Fatal(err)
		}
		defer c.s.Reset()
		st, err := s.client.h.NewStream(ctx, open.Holders[1], ProtoMPC)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Reset()
		if err := writeMsg(st, &pb.MpcHello{Session: req.Session, From: 0, To: 1}); err != nil {
			t.Fatal(err)
		}
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := st.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") {
			t.Fatalf("the holder kept an mpc stream from a non-holder: read = %v", err)
		}
	})
	for _, h := range s.holders {
		deadline := time.Now().Add(sessionWait)
		for h.sessions.len() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := h.sessions.len(); n > 0 {
			t.Fatalf("holder %s kept %d refused sessions", h.ID(), n)
		}
	}
	// The well-formed query still works.
	res, err := s.client.Infer(ctx, "open", vec(5, 3), InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, res, 1022)
}

// sessionWait bounds how long a holder may take to drop a session whose
// client left.
const sessionWait = 20 * time.Second

// waitLookup waits until n knows every model of ids.
func waitLookup(ctx context.Context, n *Node, ids ...string) error {
	for _, id := range ids {
		for {
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := n.disc.Lookup(lctx, id)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
