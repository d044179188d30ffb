package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// Option configures RunLocal and NewLocal.
type Option func(*localConfig)

type localConfig struct {
	enc     fixed.Encoding
	rng     io.Reader
	net     *transport.Network
	masked  bool
	observe observer // tests: every party's openings, the setup's included
}

// WithEncoding sets the fixed-point encoding (default fixed.Default()).
func WithEncoding(e fixed.Encoding) Option { return func(c *localConfig) { c.enc = e } }

// WithRand sets the source of seeds for sharing and dealing (default
// crypto/rand): the same reader gives the same weight shares, masks, input
// shares and bundles, but not the holders' own output re-randomisation,
// which always comes from crypto/rand. Tests may pass a deterministic
// reader; real use must not.
func WithRand(r io.Reader) Option { return func(c *localConfig) { c.rng = r } }

// WithNetwork runs the parties over nw (which must have n parties) instead
// of a fresh in-memory network per session, so that a test can drop, delay,
// rewrite or disconnect messages and read the counters.
func WithNetwork(nw *transport.Network) Option { return func(c *localConfig) { c.net = nw } }

// WithWeightMasks turns on the "mask weights once" optimisation: NewLocal
// opens F = W - B for the dealer's weight masks once, and every inference
// then opens only activations (see dealer.Masks).
func WithWeightMasks() Option { return func(c *localConfig) { c.masked = true } }

// withObserver shows f every vector every party opens, the mask opening's
// included (tests record the holders' view with it).
func withObserver(f observer) Option { return func(c *localConfig) { c.observe = f } }

// Local is an in-process deployment of a model: its weights shared among n
// parties once (and, with WithWeightMasks, their masks opened once), ready
// for any number of inferences. It plays the owner, the dealer, the client
// and the n holders; the holders run RunParty exactly as over a network.
// Infer may be called concurrently, except with WithNetwork (one network
// carries one session at a time).
type Local struct {
	p      *plan.Plan
	n      int
	cfg    localConfig
	shares []map[string]*tensor.Dense[uint64]
	masks  *dealer.Masks
	wm     []*WeightMasks
	// Setup holds the figures of the one-time mask opening (zero without
	// weight masks): rounds, bytes per party, time.
	Setup Stats
}

// NewLocal encodes and shares w among n parties for plan p (and opens the
// weight masks with WithWeightMasks).
func NewLocal(ctx context.Context, p *plan.Plan, w plan.Weights, n int, opts ...Option) (*Local, error) {
	cfg := localConfig{enc: fixed.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if p == nil {
		return nil, errors.New("engine: nil plan")
	}
	if n < 2 || n > dealer.MaxParties {
		return nil, fmt.Errorf("engine: %d parties: need 2..%d", n, dealer.MaxParties)
	}
	if cfg.net != nil && cfg.net.Parties() != n {
		return nil, fmt.Errorf("engine: network has %d parties, the session %d", cfg.net.Parties(), n)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if err := plan.CheckWeights(p, w); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	l := &Local{p: p, n: n, cfg: cfg, shares: make([]map[string]*tensor.Dense[uint64], n)}
	for i := range l.shares {
		l.shares[i] = make(map[string]*tensor.Dense[uint64], len(w))
	}
	for _, v := range p.Weights { // plan order: WithRand gives the same shares every time
		name, t := v.Name, w[v.Name]
		et, err := cfg.enc.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("engine: weight %q: %w", name, err)
		}
		ss, err := share.Split(et, n, cfg.rng)
		if err != nil {
			return nil, fmt.Errorf("engine: weight %q: %w", name, err)
		}
		for i := range n {
			l.shares[i][name] = ss[i]
		}
	}
	if cfg.masked {
		if err := l.openMasks(ctx); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Local) network() *transport.Network {
	if l.cfg.net != nil {
		return l.cfg.net
	}
	return transport.NewNetwork(l.n)
}

func (l *Local) openMasks(ctx context.Context) error {
	m, err := dealer.NewMasks(l.p, l.n, l.cfg.rng)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	l.masks = m
	l.wm = make([]*WeightMasks, l.n)
	mbs := m.Bundles()
	nw := l.network()
	stats := make([]Stats, l.n)
	err = l.runAll(ctx, func(ctx context.Context, i int) error {
		var err error
		l.wm[i], stats[i], err = openMasks(ctx, l.p, nw.Transport(i), l.shares[i], mbs[i], l.cfg.observe)
		return err
	})
	l.Setup = summarize(stats)
	return err
}

// runAll runs fn for every party concurrently and returns the first error
// (the cause: the other parties are cancelled when one fails).
func (l *Local) runAll(ctx context.Context, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, l.n)
	for i := range l.n {
		go func() { errs <- fn(ctx, i) }()
	}
	var first error
	for range l.n {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// summarize combines per-party stats: the largest figure of each kind, the
// total dealer bytes, and the parties' own stats.
func summarize(ps []Stats) Stats {
	var st Stats
	for _, s := range ps {
		st.Rounds = max(st.Rounds, s.Rounds)
		st.Messages = max(st.Messages, s.Messages)
		st.BytesSent = max(st.BytesSent, s.BytesSent)
		st.BytesRecv = max(st.BytesRecv, s.BytesRecv)
		st.Online = max(st.Online, s.Online)
		st.Offline = max(st.Offline, s.Offline)
		st.DealerBytes += s.DealerBytes
	}
	st.Parties = ps
	return st
}

// Infer runs one session on x: it shares x, deals the material, runs the
// parties, and reconstructs and decodes the output, then applies the
// plan's client-side final op (plan.Plan.Finish). The returned Stats hold
// the largest per-party figures (rounds, bytes, online and offline time),
// the dealer's time and total bundle bytes, and every party's own Stats in
// Parties. On failure the error is the first party error (the cause).
func (l *Local) Infer(ctx context.Context, x *tensor.Dense[float64]) (*tensor.Dense[float64], Stats, error) {
	r, err := l.session(ctx, x)
	if err != nil {
		return nil, r.stats, err
	}
	y, err := share.ReconstructN(r.outs, l.n)
	if err != nil {
		return nil, r.stats, fmt.Errorf("engine: output: %w", err)
	}
	out := l.cfg.enc.Decode(y)
	if err := l.p.Finish(out); err != nil { // the client's final op (a last Softmax)
		return nil, r.stats, fmt.Errorf("engine: output: %w", err)
	}
	return out, r.stats, nil
}

// localRun is one session's internals: what the client receives (every
// holder's output share) and what the dealer sent (the bundles).
type localRun struct {
	outs    []*tensor.Dense[uint64]
	bundles []*dealer.Bundle
	stats   Stats
}

// session is Infer up to the output shares.
func (l *Local) session(ctx context.Context, x *tensor.Dense[float64]) (localRun, error) {
	var r localRun
	if x == nil {
		return r, errors.New("engine: nil input")
	}
	batch, err := batchOf(Config{Plan: l.p}, &tensor.Dense[uint64]{Shape: x.Shape})
	if err != nil {
		return r, err
	}
	ex, err := l.cfg.enc.Encode(x)
	if err != nil {
		return r, fmt.Errorf("engine: input: %w", err)
	}
	in, err := share.Split(ex, l.n, l.cfg.rng)
	if err != nil {
		return r, fmt.Errorf("engine: input: %w", err)
	}
	start := time.Now()
	if l.masks != nil {
		r.bundles, err = dealer.DealMasked(l.p, batch, l.cfg.enc, l.masks, l.cfg.rng)
	} else {
		r.bundles, err = dealer.DealWith(l.p, batch, l.n, l.cfg.enc, l.cfg.rng)
	}
	if err != nil {
		return r, fmt.Errorf("engine: %w", err)
	}
	dealt := time.Since(start)
	nw := l.network()
	r.outs = make([]*tensor.Dense[uint64], l.n)
	stats := make([]Stats, l.n)
	err = l.runAll(ctx, func(ctx context.Context, i int) error {
		cfg := Config{Plan: l.p, Batch: batch, Enc: l.cfg.enc, observe: l.cfg.observe}
		if l.wm != nil {
			cfg.Masks = l.wm[i]
		}
		var err error
		r.outs[i], stats[i], err = RunParty(ctx, cfg, nw.Transport(i), l.shares[i], in[i], r.bundles[i])
		return err
	})
	r.stats = summarize(stats)
	r.stats.Dealer = dealt
	return r, err
}

// RunLocal runs a whole session in-process with n parties: NewLocal then
// one Infer (see there for the Stats).
func RunLocal(ctx context.Context, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64], n int,
	opts ...Option) (*tensor.Dense[float64], Stats, error) {
	if x == nil {
		return nil, Stats{}, errors.New("engine: nil input")
	}
	l, err := NewLocal(ctx, p, w, n, opts...)
	if err != nil {
		return nil, Stats{}, err
	}
	return l.Infer(ctx, x)
}
