package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// Config is what every party of a session agrees on.
type Config struct {
	// Plan is the model's public op graph.
	Plan *plan.Plan
	// Batch binds the plan's free batch dimension; 0 takes it from the
	// input share's leading dimension (1 for a plan without one).
	Batch int
	// Enc is the fixed-point encoding of every share; the zero value is
	// exact integers (0 fractional bits): use fixed.Default().
	Enc fixed.Encoding
	// Masks is this party's opened weight masks (OpenMasks), or nil. With
	// masks, the bundle must have been dealt by dealer.DealMasked with the
	// same mask set; without, by dealer.Deal.
	Masks *WeightMasks

	// observe, when set, sees every vector the party opens (tests only).
	observe observer
}

// Stats are one party's figures for a session (RunLocal sums or maxes them
// over the parties, see there).
type Stats struct {
	// Rounds is the number of online communication rounds. The output
	// re-randomisation seeds travel inside the first round's messages and
	// add no round, except to a plan without any interactive op, whose
	// session then takes one round (for the seeds alone).
	Rounds int
	// Messages, BytesSent and BytesRecv count this party's online traffic
	// (headers included, and the re-randomisation seeds: 32 bytes to each
	// later party, from each earlier party).
	Messages  int64
	BytesSent int64
	BytesRecv int64
	// Online is the time of the online phase (evaluation of the plan).
	Online time.Duration
	// Offline is the time to expand the dealer's bundle into material.
	Offline time.Duration
	// DealerBytes is the size of the bundle received from the dealer.
	DealerBytes int64
	// Dealer is the dealer's time to prepare every bundle (RunLocal only).
	Dealer time.Duration
	// Parties holds every party's own stats (RunLocal only).
	Parties []Stats
}

// RunParty is one holder's part of a session: it expands its dealer bundle
// (Stats.Offline), then evaluates cfg.Plan on its weight shares (by weight
// name) and its input share with the other parties over t, and returns its
// output share, re-randomised with a fresh sharing of zero agreed among the
// holders only (see rerand.go: the client and the dealer learn nothing from
// the shares but their sum). Errors name the op and node, the party and the round
// (*ProtocolError) when they happen online.
func RunParty(ctx context.Context, cfg Config, t transport.Transport,
	weights map[string]*tensor.Dense[uint64], input *tensor.Dense[uint64], b *dealer.Bundle,
) (*tensor.Dense[uint64], Stats, error) {
	var st Stats
	if b == nil || t == nil {
		return nil, st, errors.New("engine: nil dealer bundle or transport")
	}
	if cfg.Plan == nil {
		return nil, st, errors.New("engine: config has no plan")
	}
	batch, err := batchOf(cfg, input)
	if err != nil {
		return nil, st, err
	}
	switch {
	case b.Parties != t.Parties() || b.Party != t.Self():
		return nil, st, fmt.Errorf("engine: bundle is for party %d of %d, this is party %d of %d",
			b.Party, b.Parties, t.Self(), t.Parties())
	case b.Batch != batch:
		return nil, st, fmt.Errorf("engine: bundle was dealt for batch %d, the session has batch %d", b.Batch, batch)
	case b.Frac != cfg.Enc.Frac:
		return nil, st, fmt.Errorf("engine: bundle was dealt for %d fractional bits, the session uses %d", b.Frac, cfg.Enc.Frac)
	case cfg.Masks == nil && b.Masked():
		return nil, st, errors.New("engine: bundle was dealt for weight masks, the session has none (run OpenMasks)")
	case cfg.Masks != nil && b.Masks != cfg.Masks.ID:
		return nil, st, fmt.Errorf("engine: bundle was dealt for mask set %x, the session's masks are %x", b.Masks[:8], cfg.Masks.ID[:8])
	}
	start := time.Now()
	src, err := b.Expand(cfg.Plan)
	if err != nil {
		return nil, st, fmt.Errorf("engine: party %d: %w", t.Self(), err)
	}
	if cfg.Masks != nil {
		if err := src.Precompute(cfg.Masks.F); err != nil {
			return nil, st, fmt.Errorf("engine: party %d: %w", t.Self(), err)
		}
	}
	st.Offline = time.Since(start)
	st.DealerBytes = int64(b.Size())
	cfg.Batch = batch
	out, on, err := RunPartyWith(ctx, cfg, t, weights, input, src)
	on.Offline, on.DealerBytes = st.Offline, st.DealerBytes
	return out, on, err
}

func batchOf(cfg Config, input *tensor.Dense[uint64]) (int, error) {
	if cfg.Batch != 0 {
		return cfg.Batch, nil
	}
	if input == nil {
		return 0, errors.New("engine: nil input share")
	}
	if s := cfg.Plan.Input.Shape; len(s) > 0 && s[0] == -1 && len(input.Shape) > 0 {
		return input.Shape[0], nil
	}
	return 1, nil
}

// RunPartyWith is RunParty with the material already prepared (any
// Provider, e.g. a Source expanded ahead of time).
func RunPartyWith(ctx context.Context, cfg Config, t transport.Transport,
	weights map[string]*tensor.Dense[uint64], input *tensor.Dense[uint64], src dealer.Provider,
) (*tensor.Dense[uint64], Stats, error) {
	var st Stats
	if t == nil || src == nil {
		return nil, st, errors.New("engine: nil transport or material provider")
	}
	n, self := t.Parties(), t.Self()
	if n < 2 || self < 0 || self >= n {
		return nil, st, fmt.Errorf("engine: party %d of %d: need at least 2 parties and a valid index", self, n)
	}
	if cfg.Plan == nil {
		return nil, st, errors.New("engine: config has no plan")
	}
	if err := cfg.Enc.Validate(); err != nil {
		return nil, st, fmt.Errorf("engine: %w", err)
	}
	batch, err := batchOf(cfg, input)
	if err != nil {
		return nil, st, err
	}
	shapes, err := cfg.Plan.Shapes(batch)
	if err != nil {
		return nil, st, fmt.Errorf("engine: party %d: %w", self, err)
	}
	vals, err := checkInputs(cfg.Plan, shapes, weights, input)
	if err != nil {
		return nil, st, fmt.Errorf("engine: party %d: %w", self, err)
	}
	zs, err := newZeroSharing(n, self)
	if err != nil {
		return nil, st, err
	}
	gates, err := dealer.UsesGates(cfg.Plan, batch, n)
	if err != nil {
		return nil, st, fmt.Errorf("engine: party %d: %w", self, err)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &party{ctx: pctx, cancel: cancel, t: t, n: n, self: self, enc: cfg.Enc, src: src, masks: cfg.Masks,
		zs: zs, observe: cfg.observe, gates: gates}
	start := time.Now()
	nodes := cfg.Plan.Nodes
	for i := 0; i < len(nodes); i++ {
		nd := &nodes[i]
		p.node = nd
		if err := ctx.Err(); err != nil {
			return nil, p.stats(st, start), p.fail(-1, err)
		}
		ins := make([]*shared, len(nd.Inputs))
		for j, name := range nd.Inputs {
			ins[j] = vals[name]
		}
		// a product followed by a ReLU (or Clip) of it: truncate and compare at once
		if i+1 < len(nodes) && truncates(nd) && fuses(&nodes[i+1]) &&
			len(nodes[i+1].Inputs) == 1 && nodes[i+1].Inputs[0] == nd.Output {
			relu := &nodes[i+1]
			t, y, err := p.evalFused(nd, relu, ins, shapes[nd.Output])
			if err != nil {
				return nil, p.stats(st, start), err
			}
			vals[nd.Output], vals[relu.Output] = t, y
			i++
			continue
		}
		out, err := p.evalNode(nd, ins, shapes[nd.Output])
		if err != nil {
			return nil, p.stats(st, start), err
		}
		vals[nd.Output] = out
	}
	p.node = nil
	if r, ok := src.(interface{ Remaining() int }); ok && r.Remaining() != 0 {
		return nil, p.stats(st, start), fmt.Errorf("engine: party %d: %d material requests left unused", self, r.Remaining())
	}
	out, err := p.rerandomize(vals[cfg.Plan.Output])
	return out, p.stats(st, start), err
}

func (p *party) stats(st Stats, start time.Time) Stats {
	st.Rounds = p.round
	st.Messages = p.msgs
	st.BytesSent = p.bytesSent
	st.BytesRecv = p.bytesRecv
	st.Online = time.Since(start)
	return st
}

// checkInputs checks the input share and the weight shares against the
// plan's shapes and returns the initial value table.
func checkInputs(p *plan.Plan, shapes map[string][]int, weights map[string]*tensor.Dense[uint64],
	input *tensor.Dense[uint64]) (map[string]*shared, error) {
	vals := make(map[string]*shared, len(shapes))
	if input == nil {
		return nil, errors.New("nil input share")
	}
	if want := shapes[p.Input.Name]; !slices.Equal(input.Shape, want) || len(input.Data) != tensor.Size(want) {
		return nil, fmt.Errorf("input share %q has shape %v (%d values), the plan wants %v",
			p.Input.Name, input.Shape, len(input.Data), want)
	}
	vals[p.Input.Name] = input
	for _, w := range p.Weights {
		t, ok := weights[w.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("weight share %q is missing", w.Name)
		}
		if !slices.Equal(t.Shape, w.Shape) || len(t.Data) != tensor.Size(w.Shape) {
			return nil, fmt.Errorf("weight share %q has shape %v (%d values), the plan declares %v",
				w.Name, t.Shape, len(t.Data), w.Shape)
		}
		vals[w.Name] = t
	}
	if len(weights) != len(p.Weights) {
		for name := range weights {
			if _, ok := vals[name]; !ok || name == p.Input.Name {
				return nil, fmt.Errorf("weight share %q is not declared by the plan", name)
			}
		}
	}
	return vals, nil
}
