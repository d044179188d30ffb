package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node/pb"
)

// Repair without the owner (/grid/repair/1.0.0). A model whose signed
// manifest carries a repair policy (discovery.RepairPolicy) can have up to
// Tolerate lost holders replaced by its live holders:
//
//  1. A live holder, the initiator (the lowest-index live holder, on its
//     watcher, or any holder the owner asks), picks the new peers and, for
//     each share a new peer will hold, one live holder of it (its source),
//     and sends every holder of the new list the plan: the repair record
//     to be, without signatures (prepare). Each checks it against the
//     model's effective manifest: the policy, the newcomers, that each
//     replaced holder is unreachable for it now and has been for the
//     policy's grace (or that the owner signed a request for it), and that
//     the sender is a carried-over holder.
//  2. On start, every source sends its shares to their new holders
//     (transfer: the receiver checks the sender is the plan's source and
//     a holder of that share), and every holder sends each holder its
//     parts of a fresh sharing of zero for the shares that holder holds
//     (contribution, share.ZeroContribution): no part of a share reaches a
//     peer not holding it.
//  3. Each holder adds the parts to its copies (share.Resharer), stores the
//     result as the new shares version next to the served one, erases the
//     deltas and old copies it read, signs the record and answers with the
//     digests of its new shares.
//  4. The initiator checks that the copies of every share agree (a wrong
//     transfer or a lying contributor shows), and publishes the record
//     with every holder's signature (discovery.PublishRepair).
//  5. Once the amended manifest is accepted, the holders serve the new
//     version (it is Manifest.Shares()) and delete the old one
//     (repairLoop); a replaced holder that comes back drops its shares.
//
// Any failure aborts the session: nothing is published, the staged
// version is deleted, and a later repair can run.

// ProtoRepair carries a repair's messages (holder <-> holder, owner ->
// holder for a request).
const ProtoRepair protocol.ID = "/grid/repair/1.0.0"

// repairAskTimeout bounds a repair run at the owner's request (and the
// watcher's).
const repairAskTimeout = 5 * time.Minute

// ErrNothingToRepair: every holder of the model is reachable.
var ErrNothingToRepair = errors.New("nothing to repair")

// RepairResult is what a repair did.
type RepairResult struct {
	Model         string        `json:"model"`
	Replaced      []peer.ID     `json:"replaced"`  // the holders replaced
	Newcomers     []peer.ID     `json:"newcomers"` // the peers brought in, in the same order
	Holders       []peer.ID     `json:"holders"`   // the new holder list
	Seq           uint64        `json:"repair_seq"`
	SharesVersion uint64        `json:"shares_version"`
	Duration      time.Duration `json:"duration_ns"`
	BytesMoved    int64         `json:"bytes_moved"` // transfers and contributions, all holders
}

// repairer is a holder's repair state: the sessions it takes part in (at
// most one per model), the repairs it initiates, and when it last found
// each co-holder unreachable.
type repairer struct {
	mu       sync.Mutex
	sessions map[string]*repairSession // by storeKey(owner, model)
	running  map[string]bool           // models this node initiates a repair of
	down     map[peer.ID]time.Time     // co-holders unreachable since
	probed   time.Time                 // when the watcher's last probe ended
	backoff  map[string]watchBackoff   // the watcher's failed repairs, by storeKey
}

// startRepairs serves /grid/repair/1.0.0 and starts the repair watcher
// (holders only).
func (n *Node) startRepairs() {
	n.rep = &repairer{sessions: map[string]*repairSession{}, running: map[string]bool{}, down: map[peer.ID]time.Time{}, backoff: map[string]watchBackoff{}}
	n.h.SetStreamHandler(ProtoRepair, n.serve(svcShares, n.handleRepair))
	n.wg.Add(1)
	go n.repairLoop()
}

// repairTimeout bounds a repair session: the session timeout plus two
// seconds per MiB of one share.
func (n *Node) repairTimeout(words int) time.Duration {
	return 2*n.cfg.SessionTimeout + time.Duration(words>>16)*time.Second
}

// handleRepair answers one repair message.
func (n *Node) handleRepair(s network.Stream) {
	from := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(n.cfg.SessionTimeout))
	var msg pb.RepairMessage
	err := n.readReserved(newFrameReader(s), svcShares, from, maxMPCFrame, &msg)
	if err != nil {
		err = badRequest("read repair message: %v", err)
	} else {
		err = checkRepairMessage(&msg)
	}
	var reply *pb.RepairReply
	if err != nil {
		reply = &pb.RepairReply{Status: statusFromError(err)}
	} else {
		_ = s.SetDeadline(time.Now().Add(n.repairTimeout(maxMPCFrame / 8)))
		reply = n.repairDispatch(n.ctx, from, &msg)
	}
	if st := reply.GetStatus(); st.GetCode() != pb.Code_OK {
		n.log.Info("repair message refused", "remote", from, "err", errorFromStatus(st))
		n.met.errors.WithLabelValues("repair").Inc()
	}
	_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if writeMsg(s, reply) != nil {
		s.Reset()
		return
	}
	s.Close()
}

// repairDispatch handles one repair message from peer from (this node
// itself for the initiator's own part).
func (n *Node) repairDispatch(ctx context.Context, from peer.ID, msg *pb.RepairMessage) *pb.RepairReply {
	if n.rep == nil {
		return &pb.RepairReply{Status: statusFromError(badRequest("this peer is not a holder"))}
	}
	var err error
	switch k := msg.Kind.(type) {
	case *pb.RepairMessage_Prepare:
		err = n.repairPrepare(ctx, from, k.Prepare)
	case *pb.RepairMessage_Start:
		return n.repairStart(ctx, from, k.Start)
	case *pb.RepairMessage_Transfer:
		err = n.repairTransfer(from, k.Transfer)
	case *pb.RepairMessage_Contribution:
		err = n.repairContribution(from, k.Contribution)
	case *pb.RepairMessage_Abort:
		n.repairAbort(from, k.Abort)
	case *pb.RepairMessage_Ask:
		ctx, cancel := context.WithTimeout(ctx, repairAskTimeout)
		defer cancel()
		return n.repairAsked(ctx, from, k.Ask)
	}
	return &pb.RepairReply{Status: statusFromError(err)}
}

// repairCall sends one repair message to p (to this node itself
// directly) and returns its reply, an error for a refusal.
func (n *Node) repairCall(ctx context.Context, p peer.ID, msg *pb.RepairMessage) (*pb.RepairReply, error) {
	if p == n.ID() {
		r := n.repairDispatch(ctx, p, msg)
		return r, errorFromStatus(r.GetStatus())
	}
	x := exchange{proto: ProtoRepair, open: "open repair stream", send: "send repair message", read: "read repair reply", limit: maxControlFrame}
	var reply pb.RepairReply
	fs, err := n.call(ctx, p, x, msg, &reply)
	if err != nil {
		return nil, err
	}
	fs.s.Close()
	return &reply, nil
}

// AskRepair asks a live holder of model id, which this node must own, to
// repair it now: to replace the holders unreachable now (up to the
// model's Tolerate) without waiting for the policy's grace. It returns
// the repair's outcome, ErrNothingToRepair when every holder is reachable.
func (n *Node) AskRepair(ctx context.Context, id string) (*RepairResult, error) {
	m, err := n.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", id, err)
	}
	if m.Owner != n.ID() {
		return nil, fmt.Errorf("repair %q: owned by %s, this peer is %s: %w", id, m.Owner, n.ID(), ErrNotOwner)
	}
	if !m.Repair.Enabled() {
		return nil, fmt.Errorf("repair %q: %w: its manifest has no repair policy (publish it with --repair-grace)", id, ErrBadInput)
	}
	// One live holder is enough to ask: it probes the others itself.
	live := n.probeHolders(ctx, m.Holders, func(live map[peer.ID]bool) bool {
		for _, ok := range live {
			if ok {
				return true
			}
		}
		return false
	})
	var first peer.ID
	var down []peer.ID
	for _, h := range m.Holders {
		switch {
		case !live[h]:
			down = append(down, h)
		case first == "":
			first = h
		}
	}
	if len(down) == 0 {
		return nil, fmt.Errorf("repair %q: %w: all %d holders are reachable", id, ErrNothingToRepair, len(m.Holders))
	}
	if first == "" {
		return nil, fmt.Errorf("repair %q: %w: no holder is reachable", id, ErrNoHolder)
	}
	ask, err := signRepairAsk(n.sk, id, time.Now())
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", id, err)
	}
	reply, err := n.repairCall(ctx, first, &pb.RepairMessage{Kind: &pb.RepairMessage_Ask{Ask: ask}})
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", id, &PeerError{Peer: first, Role: "holder", Err: err})
	}
	res, err := repairResultFrom(id, m.Holders, reply)
	if err != nil {
		return nil, err
	}
	res.Seq = m.RepairSeq + 1
	return res, nil
}

// repairResultFrom decodes the outcome a holder reports.
func repairResultFrom(id string, prev []peer.ID, r *pb.RepairReply) (*RepairResult, error) {
	holders, err := decodePeers(r.Holders)
	if err != nil {
		return nil, fmt.Errorf("repair %q: the holder's answer: %w", id, err)
	}
	res := &RepairResult{Model: id, Holders: holders, SharesVersion: r.SharesVersion,
		Duration: time.Duration(r.Millis) * time.Millisecond, BytesMoved: int64(r.BytesMoved)}
	for i, h := range holders {
		if i < len(prev) && prev[i] != h {
			res.Replaced = append(res.Replaced, prev[i])
			res.Newcomers = append(res.Newcomers, h)
		}
	}
	return res, nil
}

// repairAsked runs a repair at the owner's request: from must be the
// model's owner and ask signed by it.
func (n *Node) repairAsked(ctx context.Context, from peer.ID, ask *pb.RepairAsk) *pb.RepairReply {
	fail := func(err error) *pb.RepairReply { return &pb.RepairReply{Status: statusFromError(err)} }
	m, err := n.lookup(ctx, ask.Model)
	if err != nil {
		return fail(err)
	}
	if from != m.Owner {
		return fail(badRequest("only the owner of model %q may ask for its repair", m.ID))
	}
	if err := checkRepairAsk(ask, m.ID, m.Owner, time.Now()); err != nil {
		return fail(err)
	}
	down := n.downHolders(ctx, m)
	if len(down) == 0 {
		return fail(fmt.Errorf("%w: all %d holders of %q are reachable from %s", ErrNothingToRepair, len(m.Holders), m.ID, n.ID()))
	}
	res, err := n.runRepair(ctx, m, down, ask)
	if err != nil {
		return fail(err)
	}
	return &pb.RepairReply{Status: statusOK, Holders: peerBytes(res.Holders), SharesVersion: res.SharesVersion,
		Millis: res.Duration.Milliseconds(), BytesMoved: uint64(res.BytesMoved)}
}

// downHolders are the holders of m unreachable from this node: those its
// watcher found down in its recent probes (probeFresh) and that
// are not connected now, else those a probe now does not reach.
func (n *Node) downHolders(ctx context.Context, m *discovery.Manifest) []peer.ID {
	var down []peer.ID
	if n.rep.probedWithin(n.probeFresh()) {
		for _, h := range m.Holders {
			if n.rep.downFor(h) > 0 && !n.connected(h) {
				down = append(down, h)
			}
		}
		if len(down) > 0 {
			return down
		}
	}
	live := n.probeHolders(ctx, m.Holders, nil)
	for _, h := range m.Holders {
		if !live[h] {
			down = append(down, h)
		}
	}
	return down
}

// runRepair replaces the holders in down (at most m.Tolerate of them) of
// the effective manifest m, with this node as the initiator.
func (n *Node) runRepair(ctx context.Context, m *discovery.Manifest, down []peer.ID, ask *pb.RepairAsk) (*RepairResult, error) {
	start := time.Now()
	key := storeKey(m.Owner, m.ID)
	n.rep.mu.Lock()
	if n.rep.running[key] {
		n.rep.mu.Unlock()
		return nil, fmt.Errorf("%w: a repair of %q is running", ErrBusy, m.ID)
	}
	n.rep.running[key] = true
	n.rep.mu.Unlock()
	defer func() {
		n.rep.mu.Lock()
		delete(n.rep.running, key)
		n.rep.mu.Unlock()
	}()
	if len(down) > m.Tolerate {
		return nil, fmt.Errorf("repair %q: %w: %d holders down, the model tolerates %d", m.ID, ErrNoHolder, len(down), m.Tolerate)
	}
	newcomers, err := n.pickNewcomers(ctx, m, len(down))
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", m.ID, err)
	}
	if containsPeer(down, n.ID()) || !containsPeer(m.Holders, n.ID()) {
		return nil, fmt.Errorf("repair %q: the initiator %s is not a live holder", m.ID, n.ID())
	}
	rp, err := buildRepairPlan(m, down, newcomers, time.Now())
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", m.ID, err)
	}
	rp.ask = ask
	moved, err := n.repairSession(ctx, m, rp, n.disc.PublishRepair)
	if err != nil {
		return nil, fmt.Errorf("repair %q: %w", m.ID, err)
	}
	res := &RepairResult{Model: m.ID, Replaced: down, Newcomers: newcomers, Holders: rp.rec.Holders,
		Seq: rp.rec.Seq, SharesVersion: rp.rec.SharesVersion, Duration: time.Since(start), BytesMoved: moved}
	n.log.Info("repaired", "model", m.ID, "replaced", down, "newcomers", newcomers, "seq", res.Seq,
		"shares_version", res.SharesVersion, "ms", res.Duration.Milliseconds(), "bytes", moved)
	return res, nil
}

// repairSession runs the plan's session with every holder of the new list
// (prepare, start, digests) and hands the signed record to finish
// (PublishRepair; a re-sharing publishes a new manifest instead); on
// failure it aborts the session everywhere. It returns the bytes moved.
func (n *Node) repairSession(ctx context.Context, m *discovery.Manifest, rp *repairPlan, finish func(context.Context, *discovery.Repair) error) (int64, error) {
	rp.session = make([]byte, repairSessionSize)
	if _, err := rand.Read(rp.session); err != nil {
		return 0, fmt.Errorf("session id: %w", err)
	}
	holders := rp.rec.Holders
	// all sends msg to every holder at once; the first failure cancels the
	// others' calls.
	all := func(msg *pb.RepairMessage) ([]*pb.RepairReply, error) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		replies := make([]*pb.RepairReply, len(holders))
		errs := make([]error, len(holders))
		forEach(len(holders), func(i int) {
			if replies[i], errs[i] = n.repairCall(cctx, holders[i], msg); errs[i] != nil {
				errs[i] = &PeerError{Peer: holders[i], Role: fmt.Sprintf("holder %d", i), Err: errs[i]}
				cancel()
			}
		})
		return replies, rootError(errs)
	}
	abort := func() {
		actx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		forEach(len(holders), func(i int) {
			_, _ = n.repairCall(actx, holders[i], &pb.RepairMessage{Kind: &pb.RepairMessage_Abort{Abort: rp.session}})
		})
	}
	if _, err := all(&pb.RepairMessage{Kind: &pb.RepairMessage_Prepare{Prepare: encodeRepairPlan(rp)}}); err != nil {
		abort()
		return 0, fmt.Errorf("prepare: %w", err)
	}
	replies, err := all(&pb.RepairMessage{Kind: &pb.RepairMessage_Start{Start: rp.session}})
	if err == nil {
		err = checkRepairDigests(m.ShareHolders(), replies)
	}
	var moved int64
	rec := rp.rec.Clone()
	rec.Sigs = map[peer.ID][]byte{}
	for i, r := range replies {
		if r != nil {
			moved += int64(r.BytesMoved)
			rec.Sigs[holders[i]] = r.Sig
		}
	}
	if err == nil {
		err = finish(ctx, rec)
	}
	if err != nil {
		abort()
		return 0, err
	}
	return moved, nil
}

// checkRepairDigests checks that every holder of each share reports the
// same digest of its new copy (replies[k] lists holder k's, by share
// ascending).
func checkRepairDigests(assign [][]int, replies []*pb.RepairReply) error {
	got := make([][]byte, len(assign))
	for k, r := range replies {
		var held []int
		for i, hs := range assign {
			if slices.Contains(hs, k) {
				held = append(held, i)
			}
		}
		if len(r.GetDigests()) != len(held) {
			return fmt.Errorf("holder %d reported %d share digests, it holds %d shares", k, len(r.GetDigests()), len(held))
		}
		for x, i := range held {
			d := r.Digests[x]
			if got[i] == nil {
				got[i] = d
				continue
			}
			if string(got[i]) != string(d) {
				return fmt.Errorf("the holders' copies of share %d differ after the re-sharing (holder %d): a transfer or a contribution was wrong", i, k)
			}
		}
	}
	return nil
}

// rootError returns the first error that is not a cancellation (a call
// another failure cancelled), else the first error.
func rootError(errs []error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return firstError(errs)
}
