package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// A holder's side of a repair session: prepare, start, and the transfers
// and contributions it receives (see repair.go).

// repairHook, when set by a test, is called at each stage of a holder's
// repair session ("start"); unset in production.
var repairHook atomic.Pointer[func(n *Node, stage string)]

// repairSession is one holder's state in a repair.
type repairSession struct {
	plan      *repairPlan
	m         *discovery.Manifest // the effective manifest the repair amends
	initiator peer.ID
	self      int   // this holder's index in the new list
	replaced  []int // the replaced indices
	assign    [][]int
	layout    shareLayout
	deadline  time.Time

	mu      sync.Mutex
	rs      *share.Resharer
	old     map[int][]uint64 // this holder's old copies of its shares
	want    map[int]bool     // shares still to arrive by transfer (a newcomer's)
	started bool
	done    bool // this holder signed: a new session may replace it
	stored  bool
	err     error         // a bad transfer or contribution ends the session
	changed chan struct{} // signalled on every arrival (capacity 1)
}

func (s *repairSession) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// repairPrepare checks a plan sent by from and opens this holder's session.
func (n *Node) repairPrepare(ctx context.Context, from peer.ID, msg *pb.RepairPlan) error {
	rp, err := decodeRepairPlan(msg)
	if err != nil {
		return err
	}
	m, err := n.lookup(ctx, rp.rec.Model)
	if err != nil {
		return err
	}
	self, replaced, err := checkRepairPlan(m, rp, n.ID(), from, time.Now())
	if err != nil {
		return err
	}
	newcomer := slices.Contains(replaced, self)
	if !newcomer && from != m.Owner {
		if err := n.checkReplacedDown(ctx, m, rp, replaced); err != nil {
			return err
		}
	}
	p, err := n.plans.get(m)
	if err != nil {
		return err
	}
	sess := &repairSession{plan: rp, m: m, initiator: from, self: self, replaced: replaced, assign: m.ShareHolders(),
		layout: newShareLayout(p), old: map[int][]uint64{}, want: map[int]bool{}, changed: make(chan struct{}, 1)}
	sess.deadline = time.Now().Add(n.repairTimeout(sess.layout.words()))
	if sess.rs, err = share.NewResharer(sess.assign, self, len(rp.rec.Holders), sess.layout.words()); err != nil {
		return badRequest("%v", err)
	}
	if newcomer {
		for _, i := range sess.rs.Held() {
			sess.want[i] = true
		}
	} else if err := n.loadRepairCopies(m, sess); err != nil {
		return err
	}
	return n.rep.open(storeKey(m.Owner, m.ID), sess)
}

// loadRepairCopies reads a carried-over holder's copies of its shares.
func (n *Node) loadRepairCopies(m *discovery.Manifest, sess *repairSession) error {
	sm, err := n.store.getVersion(m.Owner, m.ID, m.Shares())
	if err != nil {
		return err
	}
	if sm.meta.Party != sess.self || sm.meta.PlanHash != m.PlanHash {
		return fmt.Errorf("%w: stored shares of %q are party %d's, the manifest names this peer party %d", ErrUnknownModel, m.ID, sm.meta.Party, sess.self)
	}
	for _, i := range sess.rs.Held() {
		w, err := sess.layout.gather(sm.weights, i)
		if err != nil {
			return err
		}
		sess.old[i] = w
	}
	return nil
}

// checkReplacedDown checks that every replaced holder is unreachable for
// this node now and has been for the policy's grace (as its watcher saw
// it), unless the owner signed a request to repair now.
func (n *Node) checkReplacedDown(ctx context.Context, m *discovery.Manifest, rp *repairPlan, replaced []int) error {
	var gone []peer.ID
	for _, j := range replaced {
		gone = append(gone, m.Holders[j])
	}
	for _, p := range gone {
		if n.connected(p) {
			return badRequest("holder %s of %q is connected to %s: it is not replaced", p, m.ID, n.ID())
		}
	}
	if rp.ask != nil {
		if err := checkRepairAsk(rp.ask, m.ID, m.Owner, time.Now()); err != nil {
			return err
		}
	}
	// The watcher's recent probes (probeFresh) stand for a new
	// one; else probe now.
	fresh := n.rep.probedWithin(n.probeFresh())
	var probe []peer.ID
	for _, p := range gone {
		d := n.rep.downFor(p)
		if rp.ask == nil && d < m.Repair.Grace {
			return badRequest("holder %s of %q has been unreachable from %s for %v, the grace is %v", p, m.ID, n.ID(), d.Round(time.Millisecond), m.Repair.Grace)
		}
		if d == 0 || !fresh {
			probe = append(probe, p)
		}
	}
	live := n.probeHolders(ctx, probe, nil)
	for _, p := range probe {
		if live[p] {
			return badRequest("holder %s of %q is reachable from %s: it is not replaced", p, m.ID, n.ID())
		}
	}
	return nil
}

// open registers a holder's session for a model: one at a time, unless the
// previous one is past its deadline.
func (r *repairer) open(key string, sess *repairSession) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.sessions[key]; old != nil && time.Now().Before(old.deadline) && !old.isDone() {
		return fmt.Errorf("%w: a repair of %q is in progress", ErrBusy, sess.m.ID)
	}
	r.sessions[key] = sess
	return nil
}

// session returns the live session with the given ID.
func (r *repairer) session(id []byte) *repairSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		if bytes.Equal(s.plan.session, id) && time.Now().Before(s.deadline) {
			return s
		}
	}
	return nil
}

// close forgets a session.
func (r *repairer) close(sess *repairSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.sessions {
		if s == sess {
			delete(r.sessions, k)
		}
	}
}

func (s *repairSession) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// repairStart runs this holder's part of a started session: send its
// transfers and its contribution, wait for what it is owed, apply, store,
// sign and report its digests.
func (n *Node) repairStart(ctx context.Context, from peer.ID, id []byte) *pb.RepairReply {
	fail := func(err error) *pb.RepairReply { return &pb.RepairReply{Status: statusFromError(err)} }
	sess := n.rep.session(id)
	if sess == nil || sess.initiator != from {
		return fail(badRequest("no repair session %x started by %s", id, from))
	}
	sess.mu.Lock()
	again := sess.started
	sess.started = true
	sess.mu.Unlock()
	if again {
		return fail(badRequest("repair session %x started twice", id))
	}
	if h := repairHook.Load(); h != nil {
		(*h)(n, "start")
	}
	ctx, cancel := context.WithDeadline(ctx, sess.deadline)
	defer cancel()
	sent, err := n.repairSend(ctx, sess)
	if err == nil {
		err = sess.wait(ctx)
	}
	var digests [][]byte
	if err == nil {
		digests, err = n.repairApply(ctx, sess)
	}
	var sig []byte
	if err == nil {
		sig, err = discovery.SignRepair(sess.plan.rec, n.sk)
	}
	if err != nil {
		n.repairDiscard(sess)
		return fail(err)
	}
	sess.mu.Lock()
	sess.done = true
	sess.mu.Unlock()
	return &pb.RepairReply{Status: statusOK, Digests: digests, Sig: sig, BytesMoved: uint64(sent)}
}

// repairSend sends this holder's transfers (the shares it is the source
// of, to their new holders) and its parts of a fresh sharing of zero to
// every holder, each only the parts of the shares that holder holds. It
// returns the bytes sent.
func (n *Node) repairSend(ctx context.Context, sess *repairSession) (int64, error) {
	rec, held := sess.plan.rec, sess.rs.Held()
	type out struct {
		to  int
		msg *pb.RepairMessage
	}
	var msgs []out
	for i, src := range sess.plan.sources {
		if src != n.ID() {
			continue
		}
		for _, j := range sess.assign[i] {
			if slices.Contains(sess.replaced, j) {
				t := &pb.RepairTransfer{Session: sess.plan.session, Share: uint32(i), Weights: sess.layout.toSet(sess.old[i])}
				msgs = append(msgs, out{j, &pb.RepairMessage{Kind: &pb.RepairMessage_Transfer{Transfer: t}}})
			}
		}
	}
	parts, err := share.ZeroContribution(len(sess.assign), held[0], sess.layout.words(), nil)
	if err != nil {
		return 0, err
	}
	for k := range rec.Holders {
		c := &pb.RepairContribution{Session: sess.plan.session}
		for i, hs := range sess.assign {
			if slices.Contains(hs, k) {
				c.Parts = append(c.Parts, sess.layout.encodePart(i, parts[i]))
			}
		}
		msgs = append(msgs, out{k, &pb.RepairMessage{Kind: &pb.RepairMessage_Contribution{Contribution: c}}})
	}
	errs := make([]error, len(msgs))
	sizes := make([]int64, len(msgs))
	forEach(len(msgs), func(x int) {
		to := rec.Holders[msgs[x].to]
		if to != n.ID() {
			sizes[x] = int64(proto.Size(msgs[x].msg))
		}
		if _, err := n.repairCall(ctx, to, msgs[x].msg); err != nil {
			errs[x] = &PeerError{Peer: to, Role: fmt.Sprintf("holder %d", msgs[x].to), Err: err}
		}
	})
	var sent int64
	for x, err := range errs {
		if err != nil {
			return 0, err
		}
		sent += sizes[x]
	}
	return sent, nil
}

// wait waits until every part and transfer this holder is owed arrived.
func (s *repairSession) wait(ctx context.Context) error {
	for {
		s.mu.Lock()
		done, err := s.rs.Missing() == 0 && len(s.want) == 0, s.err
		s.mu.Unlock()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			s.mu.Lock()
			missing, want := s.rs.Missing(), len(s.want)
			s.mu.Unlock()
			return fmt.Errorf("repair session: %d parts and %d shares never arrived: %w", missing, want, ctx.Err())
		}
	}
}

// repairApply adds the deltas, stores the new copies as the repair's
// shares version (next to the served one) and erases the old copies; it
// returns the digests of the new copies, by share ascending.
func (n *Node) repairApply(ctx context.Context, sess *repairSession) ([][]byte, error) {
	sess.mu.Lock()
	fresh, err := sess.rs.Apply(sess.old)
	for _, w := range sess.old {
		clear(w)
	}
	sess.old = nil
	sess.mu.Unlock()
	if err != nil {
		return nil, err
	}
	weights := map[string]*tensor.Dense[uint64]{}
	var digests [][]byte
	for _, i := range sess.rs.Held() {
		sess.layout.scatter(fresh[i], i, weights)
		digests = append(digests, shareDigest(i, fresh[i]))
		clear(fresh[i])
	}
	blob, err := encodeWeightSet(weights)
	if err != nil {
		return nil, err
	}
	rec, m := sess.plan.rec, sess.m
	sum := sha256.Sum256(blob)
	meta := shareMeta{
		Model: m.ID, Owner: m.Owner.String(), Mode: discovery.ModeMPC, Version: rec.SharesVersion,
		PlanHash: m.PlanHash, Party: sess.self, Holders: peerStrings(rec.Holders), Size: len(blob), Checksum: hex.EncodeToString(sum[:]),
	}
	if err := n.store.put(ctx, meta, blob, weights); err != nil {
		return nil, err
	}
	sess.mu.Lock()
	sess.stored = true
	sess.mu.Unlock()
	n.log.Info("stored re-shared shares", "model", m.ID, "party", sess.self, "shares_version", rec.SharesVersion)
	return digests, nil
}

func peerStrings(ps []peer.ID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// repairTransfer receives a share for this newcomer from its source.
func (n *Node) repairTransfer(from peer.ID, t *pb.RepairTransfer) error {
	sess := n.rep.session(t.GetSession())
	if sess == nil {
		return badRequest("no repair session %x", t.GetSession())
	}
	i := int(t.GetShare())
	if i >= len(sess.plan.sources) || sess.plan.sources[i] != from {
		return badRequest("%s is not the source of share %d in this repair", from, i)
	}
	w, err := sess.layout.fromSet(t.GetWeights())
	if err != nil {
		return sess.fail(err)
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if !sess.want[i] {
		return badRequest("share %d is not owed to this peer (or arrived twice)", i)
	}
	delete(sess.want, i)
	sess.old[i] = w
	sess.signal()
	return nil
}

// repairContribution receives a contributor's parts of this holder's shares.
func (n *Node) repairContribution(from peer.ID, c *pb.RepairContribution) error {
	sess := n.rep.session(c.GetSession())
	if sess == nil {
		return badRequest("no repair session %x", c.GetSession())
	}
	k := slices.Index(sess.plan.rec.Holders, from)
	if k < 0 {
		return badRequest("%s is not a holder of this repair", from)
	}
	for _, p := range c.Parts {
		part, err := sess.layout.decodePart(p)
		if err == nil {
			sess.mu.Lock()
			err = sess.rs.Add(k, int(p.Share), part)
			sess.mu.Unlock()
		}
		if err != nil {
			return sess.fail(badRequest("contribution of %s: %v", from, err))
		}
	}
	sess.signal()
	return nil
}

// fail ends the session with err (the holder's start reports it).
func (s *repairSession) fail(err error) error {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
	return err
}

// repairAbort ends a session at its initiator's request.
func (n *Node) repairAbort(from peer.ID, id []byte) {
	if sess := n.rep.session(id); sess != nil && sess.initiator == from {
		sess.fail(fmt.Errorf("repair aborted by %s", from))
		n.repairDiscard(sess)
	}
}

// repairDiscard forgets a failed session and deletes the version it stored,
// unless a manifest serves it.
func (n *Node) repairDiscard(sess *repairSession) {
	n.rep.close(sess)
	sess.mu.Lock()
	stored := sess.stored
	sess.stored = false
	sess.mu.Unlock()
	if !stored {
		return
	}
	m, rec := sess.m, sess.plan.rec
	if cur, ok := n.disc.Latest(m.ID); ok && cur.Shares() == rec.SharesVersion {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if err := n.store.removeVersion(ctx, m.Owner, m.ID, rec.SharesVersion); err != nil {
		n.log.Warn("drop the shares of a failed repair", "model", m.ID, "err", err)
	}
}
