package node

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// Warm sessions: a dealer opens its weight masks with a model's holders
// before any client asks, so that the first query costs what later ones
// cost (without them it would also open the masks: F = W - B for every
// masked weight, seconds for resnet18).
//
//  1. A dealer that a live manifest names (discovery.Manifest.Dealers)
//     warms it: at start for the manifests it knows, and whenever discovery
//     reports a change (a publish, grid dealers --set). One warm runs at a
//     time per dealer (warmLoop is sequential).
//  2. It picks the replica choice a client would use with every holder
//     live (chooseReplicas over the reachable holders), takes its mask set
//     for that choice (maskCache.forDealer, as a deal would) and computes
//     its own mask values (dealer.Masks.Prepare).
//  3. It opens a session with every holder as a client would, but with
//     batch 0 and no input: an InferRequest naming itself as the dealer.
//     Each holder checks it like any session (checkInferRequest: the
//     signed manifest names this dealer, the replica choice passes
//     checkReplicaChoice, it holds the shares) and also that the requester
//     is the session's dealer; it serves at most maxHolderWarms warm
//     sessions at once, each in one of its ordinary session slots.
//  4. The dealer delivers each holder its mask bundle and a bundle dealt
//     with those masks for one sample; the holders build their mesh and
//     run holderMasks exactly as in a session: agree on whether all have
//     the masks, else bind every party's seed (bindMaskSet) and open them
//     (engine.OpenMasks), and cache them. Then they evaluate the plan once
//     on an input of zeros (every holder's share is zero, so the input is
//     public) and drop the output shares: a dry run that grows their
//     memory and caches to what a query needs, so that the first query
//     does not pay for it (on resnet18 its online phase took about twice
//     a later one's). The openings are masked by the dealer's material as
//     in any session and no output leaves a holder. Each answers an
//     InferResult without output.
//  5. A failed warm is retried with a backoff (warmBackoffMin doubling to
//     warmBackoffMax); a warm that worked is not repeated for the same
//     shares and replica choice until warmRecheck has passed, when the
//     dealer checks again (a holder that restarted lost its opened masks;
//     the check costs one round of one byte, and no dry run, when all
//     still have them).
//
// A query during a warm answers: its holders either find the masks opened
// or open them themselves, as without warm sessions.

const (
	// warmTick is how often the dealer looks for models to warm besides
	// discovery's change signals (retries are due on this tick).
	warmTick = time.Second
	// warmBackoffMin and warmBackoffMax bound the wait before a failed
	// warm is tried again (doubling).
	warmBackoffMin = 250 * time.Millisecond
	warmBackoffMax = time.Minute
	// warmRecheck is how long a successful warm stands before the dealer
	// checks again that the holders still have the masks.
	warmRecheck = 5 * time.Minute
	// maxHolderWarms caps the warm sessions a holder serves at once (each
	// also takes one of its MaxSessions slots).
	maxHolderWarms = 2
	// maxWarmBook bounds the dealer's record of warms.
	maxWarmBook = 4 * maxMaskSets
)

// warmEntry is the dealer's record of one warm: when it may run next and
// the backoff after a failure.
type warmEntry struct {
	next    time.Time
	backoff time.Duration
}

// warmBook is the dealer's record of its warms, by warm key (warmKey).
type warmBook struct {
	mu sync.Mutex
	m  map[string]warmEntry
}

// due tells whether the warm named k may run at now.
func (b *warmBook) due(k string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[k]
	return !ok || !now.Before(e.next)
}

// succeeded tells whether the last warm named k worked.
func (b *warmBook) succeeded(k string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[k]
	return ok && e.backoff == 0
}

// done records a warm's outcome at now: a success stands for warmRecheck,
// a refusal that will not change by itself (warmRefused) waits as long, any
// other failure a doubled backoff.
func (b *warmBook) done(k string, now time.Time, err error) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= maxWarmBook {
		clear(b.m)
	}
	if err == nil {
		b.m[k] = warmEntry{next: now.Add(warmRecheck)}
		return 0
	}
	e := b.m[k]
	e.backoff = min(max(2*e.backoff, warmBackoffMin), warmBackoffMax)
	if warmRefused(err) {
		e.backoff = warmRecheck
	}
	e.next = now.Add(e.backoff)
	b.m[k] = e
	return e.backoff
}

// warmRefused tells whether a warm failed on a refusal that retrying soon
// will not change: a holder found the request bad (e.g. a bundle over its
// frame limit) or the dealer untrusted, or the model refuses remote
// inference. An unknown model is not one: a holder may not have the
// manifest yet.
func warmRefused(err error) bool {
	return errors.Is(err, errBadRequest) || errors.Is(err, ErrUntrustedDealer) || errors.Is(err, ErrRemoteInferenceDisabled)
}

// MaskStats are a node's weight-mask counters.
type MaskStats struct {
	// Opened counts the mask sets this holder opened with the other
	// holders (engine.OpenMasks), in sessions and warm sessions.
	Opened int64
	// Cached is the number of opened mask sets this holder keeps.
	Cached int
	// Warmed counts the warm sessions this dealer completed.
	Warmed int64
}

// MaskStats returns the node's weight-mask counters.
func (n *Node) MaskStats() MaskStats {
	n.masks.mu.Lock()
	cached := len(n.masks.holder)
	n.masks.mu.Unlock()
	return MaskStats{
		Opened: int64(counterValue(n.masks.opened)),
		Cached: cached,
		Warmed: int64(counterValue(n.masks.warmRuns.WithLabelValues("ok"))),
	}
}

// startWarm registers the mask metrics and, on a dealer, starts warmLoop.
func (n *Node) startWarm() {
	n.met.reg.MustRegister(n.masks.opened, n.masks.warmRuns)
	if n.hasRole(RoleDealer) && !n.cfg.Client {
		n.wg.Add(1)
		go n.warmLoop()
	}
}

// warmLoop warms the models whose manifests name this dealer: the known
// ones at start, then after each change discovery reports and every
// warmTick (for retries and rechecks).
func (n *Node) warmLoop() {
	defer n.wg.Done()
	changed, stop := n.disc.Watch()
	defer stop()
	t := time.NewTicker(warmTick)
	defer t.Stop()
	for {
		n.warmDue()
		select {
		case <-n.ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// warmDue runs, one after the other, the warms that are due.
func (n *Node) warmDue() {
	for _, m := range n.disc.Models() {
		if n.ctx.Err() != nil {
			return
		}
		if !n.shouldWarm(m) {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SessionTimeout)
		reps := n.warmReplicas(ctx, m)
		k := warmKey(m, reps)
		if reps == nil || !n.masks.warmed.due(k, time.Now()) {
			cancel()
			continue
		}
		st, err := n.warmModel(ctx, m, reps)
		cancel()
		wait := n.masks.warmed.done(k, time.Now(), err)
		if err != nil {
			n.masks.warmRuns.WithLabelValues("failed").Inc()
			n.log.Info("warm failed", "model", m.ID, "version", m.Version, "retry_in", wait, "err", err)
			continue
		}
		n.masks.warmRuns.WithLabelValues("ok").Inc()
		n.log.Info("warmed weight masks", "model", m.ID, "version", m.Version, "holders", len(reps), "rounds", st.Rounds)
	}
}

// shouldWarm tells whether this dealer warms m: a live mpc model that
// allows remote inference, whose manifest names this peer as a dealer and
// not as a holder.
func (n *Node) shouldWarm(m *discovery.Manifest) bool {
	return !m.Deleted && m.Mode == discovery.ModeMPC && m.AllowRemote &&
		slices.Contains(m.Dealers, n.ID()) && !containsPeer(m.Holders, n.ID())
}

// warmKey names a warm: the model's shares (modelKey) and the replica
// choice.
func warmKey(m *discovery.Manifest, reps []peer.ID) string {
	return modelKey(m) + "/" + peerList(reps)
}

// warmReplicas is the replica choice to warm: the manifest's holders
// without replication; with it, the choice a client makes with the
// holders this dealer reaches now (chooseReplicas), nil when some share
// has none.
func (n *Node) warmReplicas(ctx context.Context, m *discovery.Manifest) []peer.ID {
	if !m.Replicated() {
		return m.Holders
	}
	live := n.probeHolders(ctx, m.Holders, nil)
	reps, err := chooseReplicas(m, func(p peer.ID) bool { return live[p] })
	if err != nil {
		return nil
	}
	return reps
}

// warmModel warms m for the replica choice reps: the dealer's mask set for
// it (drawn on first use, as a deal would) is computed here and opened by
// the holders (warmWith).
func (n *Node) warmModel(ctx context.Context, m *discovery.Manifest, reps []peer.ID) (engine.Stats, error) {
	if err := checkSession(m, m.Version, n.ID(), reps, "dealer"); err != nil {
		return engine.Stats{}, err
	}
	p, err := n.plans.get(m)
	if err != nil {
		return engine.Stats{}, err
	}
	_, shareSets := sessionParties(reps)
	masks, err := n.masks.forDealer(m, p, shareSets)
	if err != nil {
		return engine.Stats{}, fmt.Errorf("weight masks of %q: %w", m.ID, err)
	}
	if err := masks.Prepare(p); err != nil {
		return engine.Stats{}, fmt.Errorf("weight masks of %q: %w", m.ID, err)
	}
	return n.warmWith(ctx, m, reps, masks)
}

// warmWith runs one warm session of m for the replica choice reps with
// the mask set masks: it opens the session with every holder (batch 0, no
// input, this node the dealer), delivers each its mask bundle and
// collects their results. It returns the busiest holder's rounds and
// bytes.
func (n *Node) warmWith(ctx context.Context, m *discovery.Manifest, reps []peer.ID, masks *dealer.Masks) (engine.Stats, error) {
	parties, _ := sessionParties(reps)
	sid, err := newSessionID()
	if err != nil {
		return engine.Stats{}, err
	}
	defer n.protect(sid, parties)()
	cs := &clientSession{n: n, sid: sid, reps: reps, parties: parties, calls: make([]*holderCall, len(parties)),
		log: n.log.With("session", hex.EncodeToString(sid), "model", m.ID, "warm", true)}
	stop := context.AfterFunc(ctx, cs.abort)
	defer stop()
	holders := peerBytes(reps)
	for _, i := range holderOrder(parties) {
		req := &pb.InferRequest{Session: sid, Model: m.ID, Version: m.Version, Party: uint32(i), Holders: holders, Dealer: []byte(n.ID())}
		c, err := n.openSession(ctx, i, parties[i], req)
		if err != nil {
			cs.abort()
			return engine.Stats{}, err
		}
		cs.calls[i] = c
	}
	p, err := n.plans.get(m)
	if err != nil {
		return engine.Stats{}, err
	}
	bundles, err := dealer.DealMasked(p, 1, fixed.Default(), masks, crand.Reader)
	if err != nil {
		return engine.Stats{}, fmt.Errorf("deal: %w", err)
	}
	if err := n.deliverWarmBundles(ctx, sid, m.PlanHash, parties, masks.Bundles(), bundles); err != nil {
		cs.abort()
		return engine.Stats{}, err
	}
	results, err := cs.collect(ctx)
	if err != nil {
		return engine.Stats{}, err
	}
	var st engine.Stats
	for _, r := range results {
		st.Rounds = max(st.Rounds, int(r.Rounds))
		st.BytesSent = max(st.BytesSent, int64(r.BytesSent))
		st.BytesRecv = max(st.BytesRecv, int64(r.BytesRecv))
	}
	return st, nil
}

// deliverWarmBundles sends each holder of a warm session its mask bundle
// and its bundle for the dry run, all at once.
func (n *Node) deliverWarmBundles(ctx context.Context, sid []byte, hash string, parties []peer.ID, mbs []*dealer.MaskBundle, bs []*dealer.Bundle) error {
	errs := make([]error, len(parties))
	var wg sync.WaitGroup
	for i, h := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rawMask, err := mbs[i].Marshal()
			var raw []byte
			if err == nil {
				raw, err = bs[i].Marshal()
			}
			if err == nil {
				err = n.deliverBundle(ctx, h, &pb.BundleDelivery{Session: sid, Party: uint32(i), PlanHash: hash, Bundle: raw, MaskBundle: rawMask})
			}
			if err != nil {
				errs[i] = &PeerError{Peer: h, Role: fmt.Sprintf("holder %d", i), Err: fmt.Errorf("deliver mask bundle: %w", err)}
			}
		}()
	}
	wg.Wait()
	return firstError(errs)
}

// takeWarm reserves one of a holder's maxHolderWarms warm-session places,
// or fails with ErrBusy.
func (c *maskCache) takeWarm() (release func(), err error) {
	select {
	case c.holding <- struct{}{}:
		return func() { <-c.holding }, nil
	default:
		return nil, fmt.Errorf("%w (%d warm sessions running)", ErrBusy, cap(c.holding))
	}
}

// runWarm is a holder's part of a warm session once its mesh is up: the
// mask agreement and, if needed, the opening (holderMasks), then, when the
// masks were opened, the dry run on a zero input whose output is dropped.
func (n *Node) runWarm(ctx context.Context, t *streamTransport, sess *holderSession, sb *sessionBundle) (engine.Stats, error) {
	wm, rounds, err := n.holderMasks(ctx, t, sess, sb.mb)
	var st engine.Stats
	if err == nil && rounds > 1 { // every holder had the masks: no dry run (a recheck)
		cfg := engine.Config{Plan: sess.plan, Batch: sb.b.Batch, Enc: fixed.Default(), Masks: wm}
		var shape []int
		if shape, err = sess.plan.InputShape(sb.b.Batch); err == nil {
			_, st, err = engine.RunParty(ctx, cfg, t, sess.weights, tensor.New[uint64](shape...), sb.b)
		}
	}
	t.close(err == nil)
	if err != nil {
		return engine.Stats{}, fmt.Errorf("holder %d: warm: %w", sess.party, err)
	}
	return engine.Stats{Rounds: rounds + st.Rounds, BytesSent: t.sent.Load(), BytesRecv: t.recv.Load()}, nil
}

// counterValue reads a Prometheus counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// isWarm tells whether the session is a warm session (batch 0).
func (s *holderSession) isWarm() bool { return s.batch == 0 }

// holderRole is the metrics role of a holder's session of the batch:
// "warm" for its part in a dealer's warm session (batch 0, no inference),
// "holder" otherwise.
func holderRole(batch int) string {
	if batch == 0 {
		return "warm"
	}
	return "holder"
}

// inferRole is holderRole of an infer request (serveRequest's roleOf).
func inferRole(req *pb.InferRequest) string { return holderRole(int(req.GetBatch())) }

// checkWarmRequest checks a warm request's own fields (batch 0): only the
// session's dealer, the peer on the stream, may send one, and it carries
// no input. A request of another batch passes.
func checkWarmRequest(from, dealerID peer.ID, req *pb.InferRequest) error {
	switch {
	case req.Batch != 0:
		return nil
	case from != dealerID:
		return badRequest("a warm session (batch 0) from %s, only its dealer %s may ask for one", from, dealerID)
	case req.Input != nil:
		return badRequest("a warm session (batch 0) with an input")
	}
	return nil
}

// acceptWarmBundle hands a warm session its mask bundle and its bundle
// for the dry run (one sample, dealt with those masks), after checking
// they fit the session.
func acceptWarmBundle(sess *holderSession, b *pb.BundleDelivery) error {
	if len(b.MaskBundle) == 0 {
		return badRequest("a warm session without a mask bundle")
	}
	mb, err := dealer.UnmarshalMaskBundle(b.MaskBundle)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if mb.Party != sess.party || mb.Parties != len(sess.holders) {
		return badRequest("mask bundle for party %d of %d, this is party %d of %d", mb.Party, mb.Parties, sess.party, len(sess.holders))
	}
	bundle, err := dealer.UnmarshalBundle(b.Bundle)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if bundle.Batch != 1 || bundle.Masks != mb.ID {
		return badRequest("a warm session's bundle is dealt for one sample with its mask set")
	}
	return sess.deliverBundle(&sessionBundle{b: bundle, mb: mb})
}
