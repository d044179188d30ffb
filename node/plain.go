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
	start := time.Now()
	var r pb.PlainResult
	fs, err := n.call(ctx, h, plainExchange, &pb.PlainRequest{Model: m.ID, Version: m.Version, Input: encodeFloats("input", x)}, &r)
	if err != nil {
		return fail(err)
	}
	fs.s.Close()
	out, err := decodeFloats(r.Output)
	if err != nil {
		return fail(fmt.Errorf("output: %w", err))
	}
	return &Result{Shape: out.Shape, Output: out.Data, Holders: m.Holders, Online: time.Since(start)}, nil
}

// plainRole is the metrics role of a plain query (serveRequest's roleOf).
func plainRole(*pb.PlainRequest) string { return "host" }

// handlePlain serves a plain-mode query as the model's host (its request
// accepted by serveRequest).
func (n *Node) handlePlain(s network.Stream, _ *frameReader, req *pb.PlainRequest) {
	out, err := n.evalPlain(req)
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
	sm, err := n.store.getVersion(m.Owner, m.ID, m.Shares())
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
