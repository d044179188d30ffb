package node

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node/pb"
)

// requestDeal asks the dealer to deal for session sid and deliver the
// bundles to the model's holders; it returns once every holder has its
// bundle. The error names the dealer, or the holder the dealer could not
// reach.
func (n *Node) requestDeal(ctx context.Context, d peer.ID, sid []byte, m *discovery.Manifest, batch int) error {
	return n.requestDealFor(ctx, d, sid, m, batch, m.Holders)
}

// requestDealFor is requestDeal for the session's replica choice reps
// (the manifest's holders without replication): the dealer deals for its
// parties (sessionParties).
func (n *Node) requestDealFor(ctx context.Context, d peer.ID, sid []byte, m *discovery.Manifest, batch int, reps []peer.ID) error {
	req := &pb.DealerMessage{Body: &pb.DealerMessage_Deal{Deal: &pb.DealRequest{
		Session: sid, Model: m.ID, PlanHash: m.PlanHash, Batch: uint32(batch), Holders: peerBytes(reps),
		Version: m.Version,
	}}}
	var st pb.Status
	fs, err := n.call(ctx, d, dealExchange, req, &st)
	if err == nil {
		fs.s.Close()
		return nil
	}
	var rb *remoteBlame
	if errors.As(err, &rb) {
		role := "peer"
		for i, h := range m.Holders {
			if h == rb.peer {
				role = fmt.Sprintf("holder %d", i)
			}
		}
		return &PeerError{Peer: rb.peer, Role: role, Err: fmt.Errorf("dealer %s could not deliver its bundle: %s", d, rb.msg)}
	}
	return &PeerError{Peer: d, Role: "dealer", Err: err}
}

// dealAndDeliver deals the session's material (hash is the manifest's
// plan hash, which the holders check) and sends each holder its
// bundle on /grid/dealer/1.0.0 (the dealer's job, or the client's with
// dealer "self").
func (n *Node) dealAndDeliver(ctx context.Context, sid []byte, p *plan.Plan, hash string, batch int, holders []peer.ID, masks *dealer.Masks) error {
	var bundles []*dealer.Bundle
	var maskBundles []*dealer.MaskBundle
	var err error
	if masks != nil {
		bundles, err = dealer.DealMasked(p, batch, fixed.Default(), masks, crand.Reader)
		maskBundles = masks.Bundles()
	} else {
		bundles, err = dealer.Deal(p, batch, len(holders), crand.Reader)
	}
	if err != nil {
		return fmt.Errorf("deal: %w", err)
	}
	errs := make([]error, len(holders))
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, err := bundles[i].Marshal()
			var rawMask []byte
			if err == nil && maskBundles != nil {
				rawMask, err = maskBundles[i].Marshal()
			}
			if err == nil {
				err = n.deliverBundle(ctx, h, &pb.BundleDelivery{Session: sid, Party: uint32(i), PlanHash: hash, Bundle: raw, MaskBundle: rawMask})
			}
			if err != nil {
				errs[i] = &PeerError{Peer: h, Role: fmt.Sprintf("holder %d", i), Err: fmt.Errorf("deliver bundle: %w", err)}
			}
		}()
	}
	wg.Wait()
	return firstError(errs)
}

// deliverBundle sends one bundle and waits for the holder's status.
func (n *Node) deliverBundle(ctx context.Context, h peer.ID, b *pb.BundleDelivery) error {
	var st pb.Status
	fs, err := n.call(ctx, h, bundleExchange, &pb.DealerMessage{Body: &pb.DealerMessage_Bundle{Bundle: b}}, &st)
	if err != nil {
		return err
	}
	fs.s.Close()
	return nil
}

// handleDealer serves /grid/dealer/1.0.0: deal requests (dealer role) and
// bundle deliveries (holder role).
func (n *Node) handleDealer(s network.Stream) {
	_ = s.SetDeadline(time.Now().Add(n.cfg.SessionTimeout))
	fr := newFrameReader(s)
	var msg pb.DealerMessage
	release := func() {}
	defer func() { release() }()
	b, err := fr.nextReserve(maxBundleFrame, func(size int) error {
		r, err := n.reserveService(svcDealer, s.Conn().RemotePeer(), size)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBusy, err)
		}
		release = r
		return nil
	})
	if err == nil {
		err = protoUnmarshal(b, &msg)
	}
	if err != nil {
		if !errors.Is(err, ErrBusy) {
			err = fmt.Errorf("%w: %v", errBadRequest, err)
		}
		n.refuse(s, "dealer", err)
		return
	}
	switch body := msg.Body.(type) {
	case *pb.DealerMessage_Deal:
		if !n.hasRole(RoleDealer) {
			n.refuse(s, "dealer", fmt.Errorf("%w: this peer is not a dealer", errBadRequest))
			return
		}
		n.serveDeal(s, body.Deal)
	case *pb.DealerMessage_Bundle:
		if !n.hasRole(RoleHolder) {
			n.refuse(s, "holder", fmt.Errorf("%w: this peer is not a holder", errBadRequest))
			return
		}
		err := n.acceptBundle(s.Conn().RemotePeer(), body.Bundle)
		if err != nil {
			n.refuse(s, "holder", err)
			return
		}
		n.met.bytesRecv.WithLabelValues("dealer").Add(float64(len(body.Bundle.Bundle)))
		_ = writeMsg(s, statusOK)
		s.Close()
	default:
		n.refuse(s, "dealer", fmt.Errorf("%w: empty dealer message", errBadRequest))
	}
}

// serveDeal deals one session for a client and delivers the bundles.
func (n *Node) serveDeal(s network.Stream, req *pb.DealRequest) {
	n.met.sessionsStarted.WithLabelValues("dealer").Inc()
	select {
	case n.deals <- struct{}{}:
		defer func() { <-n.deals }()
	default:
		n.met.busy.Inc()
		n.refuse(s, "dealer", fmt.Errorf("%w (%d deals running)", ErrBusy, cap(n.deals)))
		return
	}
	reps, err := checkDealRequest(req)
	if err != nil {
		n.refuse(s, "dealer", err)
		return
	}
	holders, shareSets := sessionParties(reps)
	if containsPeer(holders, n.ID()) {
		n.refuse(s, "dealer", fmt.Errorf("%w: the dealer is one of the session's holders", errBadRequest))
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SessionTimeout)
	defer cancel()
	m, p, err := n.dealFor(ctx, req, reps)
	if err != nil {
		n.refuse(s, "dealer", err)
		return
	}
	// Weight masks are per model shares version and holder list (modelKey)
	// and, with replicated shares, per grouping of the shares into parties.
	masks, err := n.masks.forDealer(m, p, shareSets)
	if err != nil {
		n.refuse(s, "dealer", fmt.Errorf("weight masks of %q: %w", m.ID, err))
		return
	}
	if err := n.dealAndDeliver(ctx, req.Session, p, req.PlanHash, int(req.Batch), holders, masks); err != nil {
		n.refuse(s, "dealer", err)
		return
	}
	n.met.sessionsOK.WithLabelValues("dealer").Inc()
	_ = writeMsg(s, statusOK)
	s.Close()
}

// checkDealRequest validates a deal request's own fields: the session ID
// and the replica choice (at least two parties).
func checkDealRequest(req *pb.DealRequest) ([]peer.ID, error) {
	if len(req.Session) != sessionIDLen {
		return nil, fmt.Errorf("%w: session id of %d bytes", errBadRequest, len(req.Session))
	}
	reps, err := decodeReplicas(req.Holders)
	if err != nil {
		return nil, err
	}
	if parties, _ := sessionParties(reps); len(parties) < 2 || len(parties) > maxHolders {
		return nil, fmt.Errorf("%w: %d holders", errBadRequest, len(parties))
	}
	return reps, nil
}

// dealFor checks a deal request against the model's signed manifest: the
// model is an mpc model that allows remote inference, whose owner trusts
// this dealer (ErrUntrustedDealer otherwise), and the request's version,
// plan hash and batch are the manifest's and its replica choice is valid
// (checkReplicaChoice). It returns the manifest and its plan (the
// request's plan bytes are not used).
func (n *Node) dealFor(ctx context.Context, req *pb.DealRequest, reps []peer.ID) (*discovery.Manifest, *plan.Plan, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := n.disc.Lookup(lctx, req.Model)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %v", ErrUnknownModel, req.Model, err)
	}
	if err := checkSession(m, req.Version, n.ID(), reps, "dealer"); err != nil {
		return nil, nil, err
	}
	if m.PlanHash != req.PlanHash {
		return nil, nil, badRequest("model %q plan %.12s, this dealer knows plan %.12s", m.ID, req.PlanHash, m.PlanHash)
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, nil, err
	}
	if _, err := p.InputShape(int(req.Batch)); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return m, p, nil
}

// acceptBundle hands a delivered bundle to its session after checking that
// it comes from the session's dealer and fits the session.
func (n *Node) acceptBundle(from peer.ID, b *pb.BundleDelivery) error {
	sess := n.sessions.get(b.Session)
	if sess == nil {
		return fmt.Errorf("%w: bundle for an unknown session", errBadRequest)
	}
	if from != sess.dealer {
		return fmt.Errorf("%w: bundle from %s, the session's dealer is %s", errBadRequest, from, sess.dealer)
	}
	if int(b.Party) != sess.party || b.PlanHash != sess.planHash {
		return fmt.Errorf("%w: bundle for party %d plan %.12s, this is party %d plan %.12s", errBadRequest, b.Party, b.PlanHash, sess.party, sess.planHash)
	}
	n.record("dealer", b.Bundle)
	if sess.isWarm() {
		return acceptWarmBundle(sess, b)
	}
	bundle, err := dealer.UnmarshalBundle(b.Bundle)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var mb *dealer.MaskBundle
	if len(b.MaskBundle) > 0 {
		if mb, err = dealer.UnmarshalMaskBundle(b.MaskBundle); err != nil {
			return fmt.Errorf("%w: %v", errBadRequest, err)
		}
		if mb.Party != sess.party || mb.Parties != len(sess.holders) || mb.ID != bundle.Masks {
			return fmt.Errorf("%w: mask bundle does not match the bundle or the session", errBadRequest)
		}
	} else if bundle.Masked() {
		return fmt.Errorf("%w: bundle dealt for weight masks without its mask bundle", errBadRequest)
	}
	return sess.deliverBundle(&sessionBundle{b: bundle, mb: mb})
}
