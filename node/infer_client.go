package node

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
	"github.com/gridmpc/grid/node/pb"
)

// The client side of an inference: Infer (or Model, tensorio.Fit and
// Query), the mode and range checks, and an mpc session's four stages
// (open, deal, collect, reveal). The holder's side is infer_holder.go.

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
	Holders []peer.ID // the session's holders, in party order (its host in plain mode)
	Dealer  string    // the dealer's peer ID, "self", or "" in plain mode
	// Rounds, BytesSent and BytesRecv are the MPC traffic of the busiest
	// holder (its online rounds and the bytes it exchanged with the other
	// holders); zero in plain mode.
	Rounds               int
	BytesSent, BytesRecv int64
	// Online is the slowest holder's online phase; Total the client's wall
	// time from Infer's lookup (Query's start) to the decoded answer.
	Online, Total time.Duration
}

// ErrModeMismatch is returned when InferOptions.Plain does not match the
// model's mode.
var ErrModeMismatch = errors.New("inference mode does not match the model")

// maxBusyRetries caps InferOptions.BusyRetries; busyBackoff is the unit of
// the random backoff between attempts (times the attempt number).
const (
	maxBusyRetries = 10
	busyBackoff    = 50 * time.Millisecond
)

// Infer runs the model on x. In mpc mode the input is secret-shared to the
// model's holders, a dealer deals the session's correlated randomness, the
// holders compute together and return output shares that only this node
// reconstructs. The input's shape is checked against the plan before
// anything is sent (ErrBadInput). A failing peer is named in the error.
//
// Infer is Model, then tensorio.Fit in the Exact form, then Query.
func (n *Node) Infer(ctx context.Context, id string, x *tensor.Dense[float64], o InferOptions) (*Result, error) {
	start := time.Now()
	m, err := n.model(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	in, err := fitInput(m.Plan, x)
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	res, err := n.query(ctx, m, in, o, start)
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", id, err)
	}
	return res, nil
}

// Query runs a model found by Model on an input already fitted to its
// plan (tensorio.Fit): it checks the mode (ErrModeMismatch), the batch and
// the range the owner declared (ErrBadInput) before anything is sent, then
// runs the session within the session timeout. Errors start "infer ID".
func (n *Node) Query(ctx context.Context, m *Model, in tensorio.Input, o InferOptions) (*Result, error) {
	res, err := n.query(ctx, m, in, o, time.Now())
	if err != nil {
		return nil, fmt.Errorf("infer %q: %w", m.ID, err)
	}
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
	return in, nil
}

// query is Query with its errors unprefixed; start is when the caller's
// lookup began (Result.Total).
func (n *Node) query(ctx context.Context, m *Model, in tensorio.Input, o InferOptions, start time.Time) (*Result, error) {
	plain := m.Mode == discovery.ModePlain
	if plain != o.Plain {
		return nil, fmt.Errorf("%w: the model is published in %s mode", ErrModeMismatch, m.Mode)
	}
	if in.Batch > dealer.MaxBatch {
		return nil, fmt.Errorf("%w: batch %d over the limit %d", ErrBadInput, in.Batch, dealer.MaxBatch)
	}
	if err := checkInputRange(m.Manifest, in.X); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SessionTimeout)
	defer cancel()
	var res *Result
	var err error
	if plain {
		res, err = n.inferPlain(ctx, m.Manifest, in.X)
	} else {
		res, err = n.inferMPC(ctx, m, in, o)
	}
	if err != nil {
		n.met.sessionsFailed.WithLabelValues("client").Inc()
		return nil, err
	}
	n.met.sessionsOK.WithLabelValues("client").Inc()
	if !in.Batched && len(res.Shape) > 0 && res.Shape[0] == 1 && len(m.Plan.Input.Shape) > 0 && m.Plan.Input.Shape[0] == -1 {
		res.Shape = res.Shape[1:]
	}
	res.Model = m.ID
	res.Total = time.Since(start)
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

// clientSession is one mpc session from the client's side.
type clientSession struct {
	n       *Node
	m       *Model
	batch   int
	dealer  peer.ID
	self    bool // this node deals
	sid     []byte
	reps    []peer.ID     // the replica choice: one holder per share
	parties []peer.ID     // its distinct peers: the engine's parties
	calls   []*holderCall // by party; nil until opened
	log     *slog.Logger
}

// holderCall is the client's stream to one holder.
type holderCall struct {
	framedStream
	party int
	peer  peer.ID
}

// inferMPC runs one mpc session from the client side: it chooses the
// dealer and, for a replicated model, one live holder per share
// (chooseReplicas after a liveness probe), shares the input over the
// session's parties (engine.ShareInput), then runs the session's stages:
// open it with every party, have it dealt, collect the output shares and
// reveal the output. A replicated model retries, under a new session, with
// another replica when a holder is unreachable, refuses or fails (at most
// Tolerate+1 attempts, within the session timeout).
func (n *Node) inferMPC(ctx context.Context, m *Model, in tensorio.Input, o InferOptions) (*Result, error) {
	dealerID, self, err := n.chooseDealer(ctx, m.Manifest, o.Dealer)
	if err != nil {
		return nil, err
	}
	if !m.Replicated() {
		return n.inferSession(ctx, m, in, o, dealerID, self, m.Holders)
	}
	live := n.probeHolders(ctx, m.Holders, func(live map[peer.ID]bool) bool {
		_, err := chooseReplicas(m.Manifest, func(p peer.ID) bool { return live[p] })
		return err == nil
	})
	var lastErr error
	for attempt := 0; attempt <= m.Tolerate; attempt++ {
		reps, err := chooseReplicas(m.Manifest, func(p peer.ID) bool { return live[p] })
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
			}
			return nil, err
		}
		res, err := n.inferSession(ctx, m, in, o, dealerID, self, reps)
		if err == nil {
			return res, nil
		}
		lastErr = err
		var pe *PeerError
		if !errors.As(err, &pe) || !containsPeer(m.Holders, pe.Peer) || !live[pe.Peer] || ctx.Err() != nil ||
			errors.Is(err, ErrUntrustedDealer) || errors.Is(err, ErrBadInput) || errors.Is(err, ErrRemoteInferenceDisabled) {
			return nil, err
		}
		n.log.Info("holder failed: retrying with another replica", "model", m.ID, "holder", pe.Peer, "err", err)
		live[pe.Peer] = false
	}
	return nil, lastErr
}

// inferSession runs one session with the replica choice reps.
func (n *Node) inferSession(ctx context.Context, m *Model, in tensorio.Input, o InferOptions, dealerID peer.ID, self bool, reps []peer.ID) (*Result, error) {
	parties, _ := sessionParties(reps)
	enc := fixed.Default()
	shares, err := engine.ShareInput(enc, in.X, len(parties), crand.Reader)
	if err != nil {
		if ee := (*engine.EncodeError)(nil); errors.As(err, &ee) {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		return nil, err
	}
	sid, err := newSessionID()
	if err != nil {
		return nil, err
	}
	n.met.sessionsStarted.WithLabelValues("client").Inc()
	cs := &clientSession{n: n, m: m, batch: in.Batch, dealer: dealerID, self: self, sid: sid, reps: reps, parties: parties,
		log: n.log.With("session", hex.EncodeToString(sid), "model", m.ID)}
	defer n.protect(sid, append([]peer.ID{dealerID}, parties...))()
	if err := cs.open(ctx, shares, o.BusyRetries); err != nil {
		return nil, err
	}
	// The session's streams die with ctx: a timeout or a caller's cancel
	// reaches every holder at once.
	stop := context.AfterFunc(ctx, cs.abort)
	defer stop()
	if err := cs.deal(ctx); err != nil {
		cs.abort()
		return nil, err
	}
	results, err := cs.collect(ctx)
	if err != nil {
		return nil, err
	}
	return cs.reveal(enc, results)
}

// protect keeps the connections to peers open while a session runs (the
// connection manager does not trim them); the returned func releases them.
func (n *Node) protect(sid []byte, peers []peer.ID) (release func()) {
	tag := "grid-session-" + hex.EncodeToString(sid)
	for _, p := range peers {
		n.h.ConnManager().Protect(p, tag)
	}
	return func() {
		for _, p := range peers {
			n.h.ConnManager().Unprotect(p, tag)
		}
	}
}

// open opens the session with every holder, one after the other in peer
// ID order (holderOrder: the same order for every client and model, like
// lock ordering): a busy holder stops the opening before later holders
// commit a slot, and the slots already taken are freed at once. A busy
// refusal is retried (InferOptions.BusyRetries) after a random backoff,
// under a new session ID.
func (cs *clientSession) open(ctx context.Context, shares []*tensor.Dense[uint64], busyRetries int) error {
	cs.calls = make([]*holderCall, len(cs.parties))
	order := holderOrder(cs.parties)
	for attempt := 0; ; attempt++ {
		err := cs.openAll(ctx, order, shares)
		if err == nil {
			return nil
		}
		cs.abort()
		clear(cs.calls)
		if !errors.Is(err, ErrBusy) || attempt >= min(busyRetries, maxBusyRetries) {
			return err
		}
		backoff := time.Duration(rand.Int64N(int64(busyBackoff))) * time.Duration(attempt+1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		if cs.sid, err = newSessionID(); err != nil {
			return err
		}
	}
}

// openAll sends every holder, in order, its request and input share, and
// stops at the first refusal.
func (cs *clientSession) openAll(ctx context.Context, order []int, shares []*tensor.Dense[uint64]) error {
	holders := peerBytes(cs.reps)
	for _, i := range order {
		req := &pb.InferRequest{
			Session: cs.sid, Model: cs.m.ID, Version: cs.m.Version, Party: uint32(i), Holders: holders,
			Dealer: []byte(cs.dealer), Batch: uint32(cs.batch), Input: encodeWords("input", shares[i]),
		}
		c, err := cs.n.openSession(ctx, i, cs.parties[i], req)
		if err != nil {
			return err
		}
		cs.calls[i] = c
	}
	return nil
}

// holderOrder is the order in which a client opens a session with the
// holders: by peer ID.
func holderOrder(holders []peer.ID) []int {
	order := make([]int, len(holders))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(string(holders[a]), string(holders[b])) })
	return order
}

// abort resets the streams to the holders.
func (cs *clientSession) abort() {
	for _, c := range cs.calls {
		if c != nil {
			c.s.Reset()
		}
	}
}

// deal has the session dealt once every holder accepted it: the dealer
// deals and delivers each holder its bundle, or this node does (dealer
// self, the owner), without weight masks.
func (cs *clientSession) deal(ctx context.Context) error {
	if cs.self {
		return cs.n.dealAndDeliver(ctx, cs.sid, cs.m.Plan, cs.m.PlanHash, cs.batch, cs.parties, nil)
	}
	return cs.n.requestDealFor(ctx, cs.dealer, cs.sid, cs.m.Manifest, cs.batch, cs.reps)
}

// collect reads every holder's result. After the first failure the other
// holders get Timing.BlameGrace to report theirs (a holder that saw a peer
// leave names it), then every stream is reset; errors caused by that reset
// are not blamed on anyone (blame).
func (cs *clientSession) collect(ctx context.Context) ([]*pb.InferResult, error) {
	results := make([]*pb.InferResult, len(cs.calls))
	errs := make([]error, len(cs.calls))
	var aborted atomic.Bool
	failed := make(chan struct{})
	var failOnce sync.Once
	var wg sync.WaitGroup
	for i, c := range cs.calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.result(ctx)
			switch {
			case err == nil:
				results[i] = r
			case aborted.Load():
				errs[i] = errAborted
			default:
				errs[i] = err
				failOnce.Do(func() { close(failed) })
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-failed:
		select {
		case <-allDone:
		case <-time.After(cs.n.cfg.Timing.BlameGrace):
		}
		aborted.Store(true)
		cs.abort()
		<-allDone
	}
	if err := blame(errs, cs.parties); err != nil {
		cs.log.Debug("session failed", "err", err)
		return nil, err
	}
	return results, nil
}

// result reads the holder's result: its output share, or its failure as a
// PeerError naming it.
func (c *holderCall) result(ctx context.Context) (*pb.InferResult, error) {
	fail := func(err error) (*pb.InferResult, error) {
		return nil, &PeerError{Peer: c.peer, Role: fmt.Sprintf("holder %d", c.party), Err: err}
	}
	var r pb.InferResult
	if err := c.fr.readMsg(&r, maxTensorFrame); err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("session: %w", context.Cause(ctx)))
		}
		return fail(fmt.Errorf("connection lost during the session: %w", err))
	}
	if err := errorFromStatus(r.Status); err != nil {
		return fail(err)
	}
	c.s.Close()
	return &r, nil
}

// reveal decodes the holders' output shares, adds them up
// (engine.RevealOutput), checks the output for overflow and applies the
// plan's client-side final op (plan.Plan.Finish); the traffic figures are
// the busiest holder's.
func (cs *clientSession) reveal(enc fixed.Encoding, results []*pb.InferResult) (*Result, error) {
	outs := make([]*tensor.Dense[uint64], len(results))
	res := &Result{Holders: cs.parties, Dealer: cs.dealer.String()}
	if cs.self {
		res.Dealer = DealerSelf
	}
	for i, r := range results {
		var err error
		if outs[i], err = decodeWords(r.Output); err != nil {
			return nil, &PeerError{Peer: cs.parties[i], Role: fmt.Sprintf("holder %d", i), Err: fmt.Errorf("output share: %w", err)}
		}
		res.Rounds = max(res.Rounds, int(r.Rounds))
		res.BytesSent = max(res.BytesSent, int64(r.BytesSent))
		res.BytesRecv = max(res.BytesRecv, int64(r.BytesRecv))
		res.Online = max(res.Online, time.Duration(r.OnlineNs))
	}
	out, err := engine.RevealOutput(enc, outs)
	if err != nil {
		return nil, err
	}
	if err := checkOverflow(cs.m.Plan, enc, out); err != nil {
		return nil, err
	}
	if err := cs.m.Plan.Finish(out); err != nil { // a last Softmax: the client applies it
		return nil, err
	}
	res.Shape, res.Output = out.Shape, out.Data
	return res, nil
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
