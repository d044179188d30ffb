package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// The holder's side of an inference (/grid/infer/1.0.0): check the
// request, accept it, wait for the dealer's bundle, connect the other
// holders, run the engine and answer with the output share. The client's
// side is infer_client.go.

// handleInfer serves one session as a holder (its request accepted by
// serveRequest): checks, accept, bundle, mesh, engine, result. Any failure
// resets the session's streams so that every other party stops at once.
func (n *Node) handleInfer(s network.Stream, fr *frameReader, req *pb.InferRequest) {
	n.met.bytesRecv.WithLabelValues("infer").Add(float64(len(req.Input.GetData())))
	n.record("infer", req.Input.GetData())
	role := inferRole(req)
	sess, err := n.checkInferRequest(s.Conn().RemotePeer(), req)
	if err == nil && sess.isWarm() {
		var release func()
		if release, err = n.masks.takeWarm(); err == nil {
			defer release()
		}
	}
	if err != nil {
		n.refuse(s, role, err)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SessionTimeout)
	defer cancel()
	sess.ctx, sess.cancel = ctx, cancel
	if err := n.sessions.add(sess); err != nil {
		n.refuse(s, role, err)
		return
	}
	defer n.sessions.remove(sess)
	if err := writeMsg(s, statusOK); err != nil {
		s.Reset()
		n.met.sessionsFailed.WithLabelValues(role).Inc()
		return
	}
	// The client keeps its write side open until it has our result: any
	// read return means it left (or misbehaved), which ends the session.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_, _ = fr.next(maxControlFrame)
		cancel()
	}()
	out, st, err := n.runHolder(ctx, sess)
	n.sendResult(s, sess, out, st, err)
	cancel()
	<-watchDone
}

// sendResult answers the client with this holder's output share and
// traffic, or with its failure, and counts the session.
func (n *Node) sendResult(s network.Stream, sess *holderSession, out *tensor.Dense[uint64], st engine.Stats, err error) {
	res := &pb.InferResult{Status: statusFromError(err)}
	if err == nil {
		if out != nil { // nil for a warm session
			res.Output = encodeWords("output", out)
		}
		res.Rounds, res.BytesSent, res.BytesRecv, res.OnlineNs = uint32(st.Rounds), uint64(st.BytesSent), uint64(st.BytesRecv), int64(st.Online)
		n.met.rounds.Add(float64(st.Rounds))
	}
	switch {
	case err != nil && n.ctx.Err() != nil:
		err = errors.New("holder shutting down")
		res.Status = statusFromError(err)
	case err != nil && sess.ctx.Err() != nil:
		err = fmt.Errorf("session ended: %w", context.Cause(sess.ctx))
		res.Status = statusFromError(err)
	}
	werr := writeMsg(s, res)
	if werr != nil && err == nil {
		err = fmt.Errorf("send result: %w", werr)
	}
	if err != nil {
		n.log.Info("session failed", "session", hex.EncodeToString(sess.id), "model", sess.model, "party", sess.party, "err", err)
		n.met.sessionsFailed.WithLabelValues(holderRole(sess.batch)).Inc()
		n.met.errors.WithLabelValues(errorKind(err)).Inc()
	} else {
		n.met.sessionsOK.WithLabelValues(holderRole(sess.batch)).Inc()
	}
	if werr != nil {
		s.Reset()
	} else {
		s.Close() // a reset would discard the result the client has not read yet
	}
}

// badRequest is an errBadRequest with a message.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// checkInferRequest checks a request from peer from against the manifest
// and the store: this node holds, for the manifest's version, every share
// the session's replica choice asks it to act for (one share, its own
// party index, without replication), the replica choice is valid for the
// manifest (checkReplicaChoice), the dealer one its owner trusts, remote
// inference is allowed, and the input share has the plan's shape for the
// batch. A request of batch 0 is a warm session (warm.go): no input, and
// only the session's dealer may send it. It returns the session, not yet
// registered.
func (n *Node) checkInferRequest(from peer.ID, req *pb.InferRequest) (*holderSession, error) {
	reps, parties, shareSets, party, dealerID, err := checkSessionFields(req, n.ID())
	if err != nil {
		return nil, err
	}
	if err := checkWarmRequest(from, dealerID, req); err != nil {
		return nil, err
	}
	m, err := n.sessionManifest(req, reps, dealerID)
	if err != nil {
		return nil, err
	}
	self := slices.Index(m.Holders, n.ID())
	if self < 0 {
		return nil, badRequest("this peer is not a holder of model %q", m.ID)
	}
	if !m.Replicated() && self != party {
		return nil, badRequest("party %d of %d is not this peer", party, len(parties))
	}
	sm, err := n.sessionShares(m, self)
	if err != nil {
		return nil, err
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(p.Weights))
	for i, w := range p.Weights {
		names[i] = w.Name
	}
	weights, digest, err := sumShares(m, names, sm.weights, shareSets[party])
	if err != nil {
		return nil, err
	}
	var input *tensor.Dense[uint64]
	if req.Batch == 0 {
		err = checkWeightShares(p, weights)
	} else {
		input, err = checkInputShare(p, int(req.Batch), req.Input, weights)
	}
	if err != nil {
		return nil, err
	}
	// The identity the mask seeds this holder opens are bound to: the
	// stored shares' checksum; with replication the shares it acts for and
	// the digest of their sum, the same at every replica of those shares
	// (bindMaskSeed).
	key := modelKey(m) + "/" + sm.meta.Checksum
	if m.Replicated() {
		key = modelKey(m) + "/shares=" + partitionKey(shareSets[party:party+1]) + "/" + digest
	}
	sess := &holderSession{
		id: bytes.Clone(req.Session), model: m.ID, party: party, holders: parties, dealer: dealerID, planHash: m.PlanHash,
		modelKey: key,
		plan:     p, batch: int(req.Batch), input: input, weights: weights,
		bundle: make(chan *sessionBundle, 1), incoming: make([]chan *framedStream, len(parties)),
	}
	for i := range sess.incoming {
		sess.incoming[i] = make(chan *framedStream, 1)
	}
	return sess, nil
}

// checkSessionFields checks a request's own fields: the session ID, the
// replica choice (one peer per share; the parties are its distinct peers,
// self at the request's party index) and a dealer that is not one of them.
func checkSessionFields(req *pb.InferRequest, self peer.ID) (reps, parties []peer.ID, shareSets [][]int, party int, dealerID peer.ID, err error) {
	if len(req.Session) != sessionIDLen {
		return nil, nil, nil, 0, "", badRequest("session id of %d bytes", len(req.Session))
	}
	if reps, err = decodeReplicas(req.Holders); err != nil {
		return nil, nil, nil, 0, "", err
	}
	parties, shareSets = sessionParties(reps)
	if len(parties) > maxHolders {
		return nil, nil, nil, 0, "", badRequest("%d parties, limit %d", len(parties), maxHolders)
	}
	party = int(req.Party)
	if party >= len(parties) || parties[party] != self {
		return nil, nil, nil, 0, "", badRequest("party %d of %d is not this peer", party, len(parties))
	}
	if dealerID, err = peer.IDFromBytes(req.Dealer); err != nil {
		return nil, nil, nil, 0, "", badRequest("dealer: %v", err)
	}
	if containsPeer(parties, dealerID) {
		return nil, nil, nil, 0, "", badRequest("dealer %s is a holder of the session", dealerID)
	}
	return reps, parties, shareSets, party, dealerID, nil
}

// sessionManifest checks a request against the model's signed manifest:
// an mpc model that allows remote inference, at the request's version,
// whose shares the request's replica choice covers (checkReplicaChoice),
// whose owner trusts the session's dealer (ErrUntrustedDealer otherwise).
func (n *Node) sessionManifest(req *pb.InferRequest, reps []peer.ID, dealerID peer.ID) (*discovery.Manifest, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	m, err := n.disc.Lookup(ctx, req.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrUnknownModel, req.Model, err)
	}
	if err := checkSession(m, req.Version, dealerID, reps, "holder"); err != nil {
		return nil, err
	}
	return m, nil
}

// sessionShares returns this holder's stored shares of the manifest's
// model: the version, plan and party (this holder's index in the
// manifest) the manifest serves, not damaged.
func (n *Node) sessionShares(m *discovery.Manifest, party int) (*storedModel, error) {
	sm, err := n.store.getVersion(m.Owner, m.ID, m.Shares())
	if err != nil {
		return nil, err
	}
	if sm.meta.Version != m.Shares() || sm.meta.PlanHash != m.PlanHash || sm.meta.Party != party || sm.meta.Mode != discovery.ModeMPC {
		return nil, fmt.Errorf("%w: stored shares of %q are for version %d party %d, the manifest serves version %d", ErrUnknownModel, m.ID, sm.meta.Version, sm.meta.Party, m.Shares())
	}
	return sm, nil
}

// checkInputShare decodes the request's input share and checks its shape
// against the plan's for the batch, and the stored weight shares against
// the plan.
func checkInputShare(p *plan.Plan, batch int, share *pb.Tensor, weights map[string]*tensor.Dense[uint64]) (*tensor.Dense[uint64], error) {
	want, err := p.InputShape(batch)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	input, err := decodeWords(share)
	if err != nil {
		return nil, badRequest("input share: %v", err)
	}
	if !slices.Equal(input.Shape, want) {
		return nil, badRequest("input share shape %v, the plan wants %v", input.Shape, want)
	}
	return input, checkWeightShares(p, weights)
}

// checkWeightShares checks the stored weight shares against the plan.
func checkWeightShares(p *plan.Plan, weights map[string]*tensor.Dense[uint64]) error {
	for _, w := range p.Weights {
		t := weights[w.Name]
		if t == nil || !slices.Equal(t.Shape, w.Shape) {
			return fmt.Errorf("%w: stored share of weight %q does not fit the plan", ErrDamaged, w.Name)
		}
	}
	return nil
}

// runHolder waits for the dealer's bundle, connects the holders' mesh,
// agrees on (and opens if needed) the weight masks and runs the engine.
func (n *Node) runHolder(ctx context.Context, sess *holderSession) (*tensor.Dense[uint64], engine.Stats, error) {
	var sb *sessionBundle
	select {
	case sb = <-sess.bundle:
	case <-ctx.Done():
		return nil, engine.Stats{}, &PeerError{Peer: sess.dealer, Role: "dealer", Err: fmt.Errorf("no bundle: %w", ctx.Err())}
	}
	defer n.protect(sess.id, sess.holders)()
	if h := n.cfg.Testing.OnHolderRun; h != nil && !sess.isWarm() {
		h(sess.ctx)
	}
	t, err := n.connectMesh(ctx, sess)
	if err != nil {
		return nil, engine.Stats{}, err
	}
	if sess.isWarm() {
		st, err := n.runWarm(ctx, t, sess, sb)
		return nil, st, err
	}
	cfg := engine.Config{Plan: sess.plan, Batch: sess.batch, Enc: fixed.Default()}
	extra := 0
	if sb.mb != nil {
		if cfg.Masks, extra, err = n.holderMasks(ctx, t, sess, sb.mb); err != nil {
			t.close(false)
			return nil, engine.Stats{}, fmt.Errorf("holder %d: %w", sess.party, err)
		}
	}
	out, st, err := engine.RunParty(ctx, cfg, t, sess.weights, sess.input, sb.b)
	t.close(err == nil)
	if err != nil {
		return nil, st, fmt.Errorf("holder %d: %w", sess.party, err)
	}
	// Rounds are the online phase's (the plan's evaluation): the set-up
	// rounds (weight mask agreement, and opening on first use) are not
	// counted, so a query's rounds do not depend on what was set up before
	// it. Bytes are everything this holder exchanged with the others.
	n.log.Debug("weight mask set-up", "session", hex.EncodeToString(sess.id), "rounds", extra)
	st.BytesSent, st.BytesRecv = t.sent.Load(), t.recv.Load()
	return out, st, nil
}
