package node

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// inferPlain queries a plain-mode model's host: the input travels in
// plaintext (over the encrypted stream) and the host evaluates the plan.
func (n *Node) inferPlain(ctx context.Context, m *discovery.Manifest, x *tensor.Dense[float64]) (*Result, error) {
	if len(m.Holders) != 1 {
		return nil, fmt.Errorf("plain model %q names %d hosts, want 1", m.ID, len(m.Holders))
	}
	h := m.Holders[0]
	fail := func(err error) (*Result, error) { return nil, &PeerError{Peer: h, Role: "host", Err: err} }
	n.met.sessionsStarted.WithLabelValues("client").Inc()
	if err := n.ensureAddrs(ctx, h); err != nil {
		return fail(err)
	}
	s, err := n.h.NewStream(ctx, h, ProtoPlain)
	if err != nil {
		return fail(fmt.Errorf("open stream: %w", err))
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	start := time.Now()
	if err := writeMsg(s, &pb.PlainRequest{Model: m.ID, Version: m.Version, Input: encodeFloats("input", x)}); err != nil {
		s.Reset()
		return fail(fmt.Errorf("send request: %w", err))
	}
	var r pb.PlainResult
	if err := newFrameReader(s).readMsg(&r, maxTensorFrame); err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return fail(fmt.Errorf("session: %w", ctx.Err()))
		}
		return fail(fmt.Errorf("read result: %w", err))
	}
	if err := errorFromStatus(r.Status); err != nil {
		return fail(err)
	}
	out, err := decodeFloats(r.Output)
	if err != nil {
		return fail(fmt.Errorf("output: %w", err))
	}
	return &Result{Shape: out.Shape, Output: out.Data, Holders: m.Holders, Online: time.Since(start)}, nil
}

// handlePlain serves a plain-mode query as the model's host.
func (n *Node) handlePlain(s network.Stream) {
	defer n.resetOnPanic(s)
	if err := s.Scope().SetService(svcPlain); err != nil {
		s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(n.cfg.SessionTimeout))
	n.met.sessionsStarted.WithLabelValues("host").Inc()
	release, err := n.takeSlot()
	if err != nil {
		n.refuse(s, "host", err)
		return
	}
	defer release()
	var req pb.PlainRequest
	if err := n.readReserved(newFrameReader(s), svcPlain, s.Conn().RemotePeer(), maxTensorFrame, &req); err != nil {
		n.met.errors.WithLabelValues("bad_request").Inc()
		n.met.sessionsFailed.WithLabelValues("host").Inc()
		s.Reset()
		return
	}
	out, err := n.evalPlain(&req)
	if err != nil {
		n.refuse(s, "host", err)
		return
	}
	if err := writeMsg(s, &pb.PlainResult{Status: statusOK, Output: encodeFloats("output", out)}); err != nil {
		n.met.sessionsFailed.WithLabelValues("host").Inc()
		s.Reset()
		return
	}
	n.met.sessionsOK.WithLabelValues("host").Inc()
	s.Close()
}

// evalPlain checks a plain request against the manifest and the store and
// evaluates the plan.
func (n *Node) evalPlain(req *pb.PlainRequest) (*tensor.Dense[float64], error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	m, err := n.disc.Lookup(ctx, req.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrUnknownModel, req.Model, err)
	}
	switch {
	case m.Mode != discovery.ModePlain:
		return nil, fmt.Errorf("%w: model %q is published in %s mode", errBadRequest, m.ID, m.Mode)
	case !m.AllowRemote:
		return nil, fmt.Errorf("%w: %q", ErrRemoteInferenceDisabled, m.ID)
	case req.Version != m.Version:
		return nil, fmt.Errorf("%w: model %q version %d, this host knows version %d", errBadRequest, m.ID, req.Version, m.Version)
	case len(m.Holders) != 1 || m.Holders[0] != n.ID():
		return nil, fmt.Errorf("%w: this peer does not host %q", ErrUnknownModel, m.ID)
	}
	sm, err := n.store.get(m.Owner, m.ID)
	if err != nil {
		return nil, err
	}
	if sm.meta.Version != m.Shares() || sm.meta.PlanHash != m.PlanHash || sm.meta.Mode != discovery.ModePlain {
		return nil, fmt.Errorf("%w: stored weights of %q are for version %d, the manifest is version %d", ErrUnknownModel, m.ID, sm.meta.Version, m.Version)
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, err
	}
	x, err := decodeFloats(req.Input)
	if err != nil {
		return nil, fmt.Errorf("%w: input: %v", errBadRequest, err)
	}
	batch := 1
	if len(p.Input.Shape) > 0 && p.Input.Shape[0] == -1 && len(x.Shape) > 0 {
		batch = x.Shape[0]
	}
	want, err := p.InputShape(batch)
	if err != nil || !slices.Equal(want, x.Shape) {
		return nil, fmt.Errorf("%w: input shape %v, the model expects %v", ErrBadInput, x.Shape, p.Input.Shape)
	}
	w := make(plan.Weights, len(sm.weights))
	for name, t := range sm.weights {
		f := &tensor.Dense[float64]{Shape: t.Shape, Data: make([]float64, len(t.Data))}
		for i, v := range t.Data {
			f.Data[i] = math.Float64frombits(v)
		}
		w[name] = f
	}
	out, err := plan.EvalPlain(p, w, x)
	if err != nil {
		return nil, fmt.Errorf("%w: evaluate %q: %v", ErrDamaged, m.ID, err)
	}
	return out, nil
}
