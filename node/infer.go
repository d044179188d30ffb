package node

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
	"github.com/gridmpc/grid/node/pb"
)

// InferOptions tune Infer.
type InferOptions struct {
	// Plain queries a plain-mode model: its host sees the input. A
	// plain-mode model is only queried with Plain set, and an mpc-mode
	// model never with it.
	Plain bool
	// Dealer picks the dealer of an mpc session among those the model's
	// owner trusts: "" chooses a reachable dealer the manifest names (this
	// node if none is and this node is the owner), "self" makes this node
	// the dealer (the owner only), else a peer ID the manifest names.
	Dealer string
	// BusyRetries is how many times a session refused as busy by a holder
	// is retried, after a random backoff (0: the ErrBusy is returned at once).
	BusyRetries int
}

// DealerSelf is the InferOptions.Dealer value that makes the client deal.
const DealerSelf = "self"

// Result is the answer of Infer.
type Result struct {
	Model   string
	Shape   []int     // output shape (batch included when the input had one)
	Output  []float64 // flat, row-major
	Holders []peer.ID // the model's holders (its host in plain mode)
	Dealer  string    // the dealer's peer ID, "self", or "" in plain mode
	// Rounds, BytesSent and BytesRecv are the MPC traffic of the busiest
	// holder (its online rounds and the bytes it exchanged with the other
	// holders); zero in plain mode.
	Rounds               int
	BytesSent, BytesRecv int64
	// Online is the slowest holder's online phase; Total the client's wall
	// time from lookup to decoded answer.
	Online, Total time.Duration
}

// ErrModeMismatch is returned when InferOptions.Plain does not match the
// model's mode.
var ErrModeMismatch = errors.New("inference mode does not match the model")

// Infer runs the model on x. In mpc mode the input is secret-shared to the
// model's holders, a dealer deals the session's correlated randomness, the
// holders compute together and return output shares that only this node
// reconstructs. The input's shape is checked against the plan before
// anything is sent (ErrBadInput). A failing peer is named in the error.
func (n *Node) Infer(ctx context.Context, id string, x *tensor.Dense[float64], o InferOptions) (*Result, error) {
	start := time.Now()
	m, err := n.disc.Lookup(ctx, id)
	if err != nil {
		if errors.Is(err, discovery.ErrNotFound) {
			return nil, fmt.Errorf("infer %q: %w: %w", id, ErrUnknownModel, err)
		}
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	in, err := fitInput(p, x)
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	plain := m.Mode == discovery.ModePlain
	if plain != o.Plain {
		return nil, fmt.Errorf("infer %q: %w: the model is published in %s mode", id, ErrModeMismatch, m.Mode)
	}
	if err := checkInputRange(m, in.X); err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SessionTimeout)
	defer cancel()
	var res *Result
	if plain {
		res, err = n.inferPlain(ctx, m, in.X)
	} else {
		res, err = n.inferMPC(ctx, m, p, in.X, in.Batch, o.Dealer, o.BusyRetries)
	}
	if err != nil {
		n.met.sessionsFailed.WithLabelValues("client").Inc()
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	n.met.sessionsOK.WithLabelValues("client").Inc()
	if !in.Batched && len(res.Shape) > 0 && res.Shape[0] == 1 && len(p.Input.Shape) > 0 && p.Input.Shape[0] == -1 {
		res.Shape = res.Shape[1:]
	}
	res.Model = id
	res.Total = time.Since(start)
	return res, nil
}

// fitInput checks x against the plan's input shape before anything is
// sent (tensorio.Fit, Exact form: the plan's shape, with any batch in a
// free leading dimension, or one sample without it); errors wrap
// ErrBadInput and name both shapes.
func fitInput(p *plan.Plan, x *tensor.Dense[float64]) (tensorio.Input, error) {
	in, err := tensorio.Fit(x, p.Input.Shape, tensorio.Exact)
	if err != nil {
		return in, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if in.Batch > dealer.MaxBatch {
		return in, fmt.Errorf("%w: batch %d over the limit %d", ErrBadInput, in.Batch, dealer.MaxBatch)
	}
	return in, nil
}

// holderCall is the client's stream to one holder.
type holderCall struct {
	framedStream
	party int
	peer  peer.ID
}

// inferMPC runs one mpc session from the client side.
func (n *Node) inferMPC(ctx context.Context, m *discovery.Manifest, p *plan.Plan, x *tensor.Dense[float64], batch int, dealerOpt string, busyRetries int) (*Result, error) {
	N := len(m.Holders)
	enc := fixed.Default()
	ex, err := enc.Encode(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	shares, err := share.Split(ex, N, crand.Reader)
	if err != nil {
		return nil, fmt.Errorf("share input: %w", err)
	}
	dealerID, self, err := n.chooseDealer(ctx, m, dealerOpt)
	if err != nil {
		return nil, err
	}
	sid, err := newSessionID()
	if err != nil {
		return nil, err
	}
	n.met.sessionsStarted.WithLabelValues("client").Inc()
	log := n.log.With("session", hex.EncodeToString(sid), "model", m.ID)
	holders := peerBytes(m.Holders)

	tag := "grid-session-" + hex.EncodeToString(sid)
	for _, h := range append([]peer.ID{dealerID}, m.Holders...) {
		n.h.ConnManager().Protect(h, tag)
		defer n.h.ConnManager().Unprotect(h, tag)
	}

	// Phase 1: open the session with every holder, one after the other in
	// peer ID order (the same order for every client and model, like lock
	// ordering): a busy holder stops the opening before later holders
	// commit a slot, and the slots already taken are freed at once. A busy
	// refusal is retried (InferOptions.BusyRetries) after a random backoff.
	calls := make([]*holderCall, N)
	errs := make([]error, N)
	order := make([]int, N)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(string(m.Holders[a]), string(m.Holders[b])) })
	var wg sync.WaitGroup
	for attempt := 0; ; attempt++ {
		var err error
		for _, i := range order {
			req := &pb.InferRequest{
				Session: sid, Model: m.ID, Version: m.Version, Party: uint32(i), Holders: holders,
				Dealer: []byte(dealerID), Batch: uint32(batch), Input: encodeWords("input", shares[i]),
			}
			if calls[i], err = n.openSession(ctx, i, m.Holders[i], req); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		for i, c := range calls {
			if c != nil {
				c.s.Reset()
				calls[i] = nil
			}
		}
		if !errors.Is(err, ErrBusy) || attempt >= min(busyRetries, maxBusyRetries) {
			return nil, err
		}
		backoff := time.Duration(rand.Int64N(int64(busyBackoff))) * time.Duration(attempt+1)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		if sid, err = newSessionID(); err != nil {
			return nil, err
		}
	}
	abort := func() {
		for _, c := range calls {
			if c != nil {
				c.s.Reset()
			}
		}
	}
	// The session's streams die with ctx: a timeout or a caller's cancel
	// reaches every holder at once.
	stop := context.AfterFunc(ctx, abort)
	defer stop()

	// Phase 2: the dealer deals for the session (or we do).
	if self {
		err = n.dealAndDeliver(ctx, sid, p, m.PlanHash, batch, m.Holders, nil)
	} else {
		err = n.requestDeal(ctx, dealerID, sid, m, batch)
	}
	if err != nil {
		abort()
		return nil, err
	}

	// Phase 3: collect the output shares. After the first failure the
	// other holders get a short grace to report theirs (a holder that saw a
	// peer leave names it), then every stream is reset; errors caused by
	// that reset are not blamed on anyone.
	results := make([]*pb.InferResult, N)
	var aborted atomic.Bool
	failed := make(chan struct{})
	var failOnce sync.Once
	record := func(i int, err error) {
		if aborted.Load() {
			errs[i] = errAborted
			return
		}
		errs[i] = err
		failOnce.Do(func() { close(failed) })
	}
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := fmt.Sprintf("holder %d", i)
			var r pb.InferResult
			if err := c.fr.readMsg(&r, maxTensorFrame); err != nil {
				if ctx.Err() != nil {
					record(i, &PeerError{Peer: c.peer, Role: role, Err: fmt.Errorf("session: %w", context.Cause(ctx))})
				} else {
					record(i, &PeerError{Peer: c.peer, Role: role, Err: fmt.Errorf("connection lost during the session: %w", err)})
				}
				return
			}
			if err := errorFromStatus(r.Status); err != nil {
				record(i, &PeerError{Peer: c.peer, Role: role, Err: err})
				return
			}
			results[i] = &r
			c.s.Close()
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-failed:
		select {
		case <-allDone:
		case <-time.After(n.cfg.Timing.BlameGrace):
		}
		aborted.Store(true)
		abort()
		<-allDone
	}
	if err := blame(errs, m.Holders); err != nil {
		log.Debug("session failed", "err", err)
		return nil, err
	}
	outs := make([]*tensor.Dense[uint64], N)
	res := &Result{Holders: m.Holders, Dealer: dealerID.String()}
	if self {
		res.Dealer = DealerSelf
	}
	for i, r := range results {
		if outs[i], err = decodeWords(r.Output); err != nil {
			return nil, &PeerError{Peer: m.Holders[i], Role: fmt.Sprintf("holder %d", i), Err: fmt.Errorf("output share: %w", err)}
		}
		res.Rounds = max(res.Rounds, int(r.Rounds))
		res.BytesSent = max(res.BytesSent, int64(r.BytesSent))
		res.BytesRecv = max(res.BytesRecv, int64(r.BytesRecv))
		res.Online = max(res.Online, time.Duration(r.OnlineNs))
	}
	out, err := share.Reconstruct(outs)
	if err != nil {
		return nil, fmt.Errorf("reconstruct output: %w", err)
	}
	dec := enc.Decode(out)
	if err := checkOverflow(p, enc, dec); err != nil {
		return nil, err
	}
	res.Shape, res.Output = dec.Shape, dec.Data
	return res, nil
}

// checkInputRange refuses input values beyond the range the model's owner
// declared (discovery.Manifest.InputRange), before anything is sent.
func checkInputRange(m *discovery.Manifest, x *tensor.Dense[float64]) error {
	if m.InputRange <= 0 {
		return nil
	}
	for i, v := range x.Data {
		if math.Abs(v) > m.InputRange {
			return fmt.Errorf("%w: input value %g (element %d) is outside the range ±%g the model's owner declared", ErrBadInput, v, i, m.InputRange)
		}
	}
	return nil
}

// checkOverflow detects a wrapped result: for a plan whose correct output
// never exceeds the engine's safe range (plan.OutputCapped), an output
// beyond it proves that an intermediate value overflowed the fixed-point
// range (fixed.ErrOverflow). A result within the range is not proof of
// correctness: only inputs within the plan's safe range are.
func checkOverflow(p *plan.Plan, enc fixed.Encoding, out *tensor.Dense[float64]) error {
	err := enc.CheckOutput(out)
	if err == nil {
		return nil
	}
	if capped, cerr := plan.OutputCapped(p, enc); cerr != nil || !capped {
		return nil
	}
	return err
}

// maxBusyRetries caps InferOptions.BusyRetries; busyBackoff is the unit of
// the random backoff between attempts (times the attempt number).
const (
	maxBusyRetries = 10
	busyBackoff    = 50 * time.Millisecond
)

// errAborted marks a holder's error caused by the client's own teardown.
var errAborted = errors.New("aborted by the client")

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

// openSession sends the request to holder i and waits for its accept.
func (n *Node) openSession(ctx context.Context, i int, h peer.ID, req *pb.InferRequest) (*holderCall, error) {
	var st pb.Status
	fs, err := n.call(ctx, h, sessionExchange, req, &st)
	if err != nil {
		return nil, &PeerError{Peer: h, Role: fmt.Sprintf("holder %d", i), Err: err}
	}
	return &holderCall{framedStream: *fs, party: i, peer: h}, nil
}

// handleInfer serves one session as a holder: checks, accept, bundle,
// mesh, engine, result. Any failure resets the session's streams so that
// every other party stops at once.
func (n *Node) handleInfer(s network.Stream) {
	var req pb.InferRequest
	fr, release, ok := n.acceptRequest(s, svcInfer, "holder", &req)
	if !ok {
		return
	}
	defer release()
	n.met.bytesRecv.WithLabelValues("infer").Add(float64(len(req.Input.GetData())))
	n.record("infer", req.Input.GetData())
	sess, input, weights, p, err := n.checkInferRequest(&req)
	if err != nil {
		n.refuse(s, "holder", err)
		return
	}
	log := n.log.With("session", hex.EncodeToString(sess.id), "model", req.Model, "party", sess.party)
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SessionTimeout)
	defer cancel()
	sess.ctx, sess.cancel = ctx, cancel
	if err := n.sessions.add(sess); err != nil {
		n.refuse(s, "holder", err)
		return
	}
	defer n.sessions.remove(sess)
	if err := writeMsg(s, statusOK); err != nil {
		s.Reset()
		n.met.sessionsFailed.WithLabelValues("holder").Inc()
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
	out, st, err := n.runHolder(ctx, sess, p, req.Batch, input, weights)
	res := &pb.InferResult{Status: statusFromError(err)}
	if err == nil {
		res.Output = encodeWords("output", out)
		res.Rounds, res.BytesSent, res.BytesRecv, res.OnlineNs = uint32(st.Rounds), uint64(st.BytesSent), uint64(st.BytesRecv), int64(st.Online)
		n.met.rounds.Add(float64(st.Rounds))
	}
	switch {
	case err != nil && n.ctx.Err() != nil:
		err = errors.New("holder shutting down")
		res.Status = statusFromError(err)
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("session ended: %w", context.Cause(ctx))
		res.Status = statusFromError(err)
	}
	werr := writeMsg(s, res)
	if werr != nil && err == nil {
		err = fmt.Errorf("send result: %w", werr)
	}
	if err != nil {
		log.Info("session failed", "err", err)
		n.met.sessionsFailed.WithLabelValues("holder").Inc()
		n.met.errors.WithLabelValues(errorKind(err)).Inc()
	} else {
		n.met.sessionsOK.WithLabelValues("holder").Inc()
	}
	if werr != nil {
		s.Reset()
	} else {
		s.Close() // a reset would discard the result the client has not read yet
	}
	cancel()
	<-watchDone
}

// checkInferRequest checks a request against the manifest and the store:
// this node holds the model at this party index for the manifest's version,
// the holders are the manifest's, remote inference is allowed, and the
// input share has the plan's shape for the batch.
func (n *Node) checkInferRequest(req *pb.InferRequest) (*holderSession, *tensor.Dense[uint64], map[string]*tensor.Dense[uint64], *plan.Plan, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
	}
	if len(req.Session) != sessionIDLen {
		return nil, nil, nil, nil, bad("session id of %d bytes", len(req.Session))
	}
	holders, err := decodePeers(req.Holders)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	party := int(req.Party)
	if party >= len(holders) || holders[party] != n.ID() {
		return nil, nil, nil, nil, bad("party %d of %d is not this peer", party, len(holders))
	}
	dealerID, err := peer.IDFromBytes(req.Dealer)
	if err != nil {
		return nil, nil, nil, nil, bad("dealer: %v", err)
	}
	if containsPeer(holders, dealerID) {
		return nil, nil, nil, nil, bad("dealer %s is a holder of the session", dealerID)
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	m, err := n.disc.Lookup(ctx, req.Model)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%w: %q: %v", ErrUnknownModel, req.Model, err)
	}
	if m.Mode != discovery.ModeMPC {
		return nil, nil, nil, nil, bad("model %q is published in %s mode", m.ID, m.Mode)
	}
	if !m.AllowRemote {
		return nil, nil, nil, nil, fmt.Errorf("%w: %q", ErrRemoteInferenceDisabled, m.ID)
	}
	if req.Version != m.Version {
		return nil, nil, nil, nil, bad("model %q version %d, this holder knows version %d", m.ID, req.Version, m.Version)
	}
	if !slices.Equal(holders, m.Holders) {
		return nil, nil, nil, nil, bad("the session's holders do not match model %q's manifest", m.ID)
	}
	if !m.MayDeal(dealerID) {
		return nil, nil, nil, nil, fmt.Errorf("%w: dealer %s is not the owner of model %q nor a dealer its manifest names", ErrUntrustedDealer, dealerID, m.ID)
	}
	sm, err := n.store.get(m.Owner, m.ID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if sm.meta.Version != m.Shares() || sm.meta.PlanHash != m.PlanHash || sm.meta.Party != party || sm.meta.Mode != discovery.ModeMPC {
		return nil, nil, nil, nil, fmt.Errorf("%w: stored shares of %q are for version %d party %d, the manifest serves version %d", ErrUnknownModel, m.ID, sm.meta.Version, sm.meta.Party, m.Shares())
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	batch := int(req.Batch)
	want, err := p.InputShape(batch)
	if err != nil {
		return nil, nil, nil, nil, bad("%v", err)
	}
	input, err := decodeWords(req.Input)
	if err != nil {
		return nil, nil, nil, nil, bad("input share: %v", err)
	}
	if !slices.Equal(input.Shape, want) {
		return nil, nil, nil, nil, bad("input share shape %v, the plan wants %v", input.Shape, want)
	}
	for _, w := range p.Weights {
		t := sm.weights[w.Name]
		if t == nil || !slices.Equal(t.Shape, w.Shape) {
			return nil, nil, nil, nil, fmt.Errorf("%w: stored share of weight %q does not fit the plan", ErrDamaged, w.Name)
		}
	}
	sess := &holderSession{
		id: bytes.Clone(req.Session), party: party, holders: holders, dealer: dealerID, planHash: m.PlanHash,
		modelKey: modelKey(m) + "/" + sm.meta.Checksum,
		bundle:   make(chan *sessionBundle, 1), incoming: make([]chan *framedStream, len(holders)),
	}
	for i := range sess.incoming {
		sess.incoming[i] = make(chan *framedStream, 1)
	}
	return sess, input, sm.weights, p, nil
}

// runHolder waits for the dealer's bundle, connects the holders' mesh and
// runs the engine.
func (n *Node) runHolder(ctx context.Context, sess *holderSession, p *plan.Plan, batch uint32, input *tensor.Dense[uint64], weights map[string]*tensor.Dense[uint64]) (*tensor.Dense[uint64], engine.Stats, error) {
	var sb *sessionBundle
	select {
	case sb = <-sess.bundle:
	case <-ctx.Done():
		return nil, engine.Stats{}, &PeerError{Peer: sess.dealer, Role: "dealer", Err: fmt.Errorf("no bundle: %w", ctx.Err())}
	}
	tag := "grid-session-" + hex.EncodeToString(sess.id)
	for _, h := range sess.holders {
		n.h.ConnManager().Protect(h, tag)
		defer n.h.ConnManager().Unprotect(h, tag)
	}
	if h := n.cfg.Testing.OnHolderRun; h != nil {
		h(sess.ctx)
	}
	t, err := n.connectMesh(ctx, sess)
	if err != nil {
		return nil, engine.Stats{}, err
	}
	cfg := engine.Config{Plan: p, Batch: int(batch), Enc: fixed.Default()}
	extra := 0
	if sb.mb != nil {
		if cfg.Masks, extra, err = n.holderMasks(ctx, t, sess, p, weights, sb.mb); err != nil {
			t.close(false)
			return nil, engine.Stats{}, fmt.Errorf("holder %d: %w", sess.party, err)
		}
	}
	out, st, err := engine.RunParty(ctx, cfg, t, weights, input, sb.b)
	t.close(err == nil)
	if err != nil {
		return nil, st, fmt.Errorf("holder %d: %w", sess.party, err)
	}
	// Count everything this holder exchanged with the others, the mask
	// agreement and setup included.
	st.Rounds += extra
	st.BytesSent, st.BytesRecv = t.sent.Load(), t.recv.Load()
	return out, st, nil
}
