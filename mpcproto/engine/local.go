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

// Option configures RunLocal.
type Option func(*localConfig)

type localConfig struct {
	enc fixed.Encoding
	rng io.Reader
	net *transport.Network
}

// WithEncoding sets the fixed-point encoding (default fixed.Default()).
func WithEncoding(e fixed.Encoding) Option { return func(c *localConfig) { c.enc = e } }

// WithRand sets the source of seeds for sharing and dealing (default
// crypto/rand). Tests may pass a deterministic reader; real use must not.
func WithRand(r io.Reader) Option { return func(c *localConfig) { c.rng = r } }

// WithNetwork runs the parties over nw (which must have n parties) instead
// of a fresh in-memory network, so that a test can drop, delay, rewrite or
// disconnect messages and read the counters.
func WithNetwork(nw *transport.Network) Option { return func(c *localConfig) { c.net = nw } }

// RunLocal runs a whole session in-process with n parties: it encodes and
// shares the weights and the input, deals the material, runs the n parties
// concurrently over an in-memory network, and reconstructs and decodes the
// output. The returned Stats hold the largest per-party figures (rounds,
// bytes, online and offline time), the dealer's time and total bundle
// bytes, and every party's own Stats in Parties. On failure the error is
// the first party error (the cause; the others are cancelled).
func RunLocal(ctx context.Context, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64], n int,
	opts ...Option) (*tensor.Dense[float64], Stats, error) {
	var st Stats
	cfg := localConfig{enc: fixed.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if p == nil {
		return nil, st, errors.New("engine: nil plan")
	}
	if x == nil {
		return nil, st, errors.New("engine: nil input")
	}
	if n < 2 || n > dealer.MaxParties {
		return nil, st, fmt.Errorf("engine: %d parties: need 2..%d", n, dealer.MaxParties)
	}
	if cfg.net != nil && cfg.net.Parties() != n {
		return nil, st, fmt.Errorf("engine: network has %d parties, the session %d", cfg.net.Parties(), n)
	}
	if err := plan.CheckWeights(p, w); err != nil {
		return nil, st, fmt.Errorf("engine: %w", err)
	}
	batch, err := batchOf(Config{Plan: p}, &tensor.Dense[uint64]{Shape: x.Shape})
	if err != nil {
		return nil, st, err
	}
	ex, err := cfg.enc.Encode(x)
	if err != nil {
		return nil, st, fmt.Errorf("engine: input: %w", err)
	}
	inShares, err := share.Split(ex, n, cfg.rng)
	if err != nil {
		return nil, st, fmt.Errorf("engine: input: %w", err)
	}
	wShares := make([]map[string]*tensor.Dense[uint64], n)
	for i := range wShares {
		wShares[i] = make(map[string]*tensor.Dense[uint64], len(w))
	}
	for name, t := range w {
		et, err := cfg.enc.Encode(t)
		if err != nil {
			return nil, st, fmt.Errorf("engine: weight %q: %w", name, err)
		}
		ss, err := share.Split(et, n, cfg.rng)
		if err != nil {
			return nil, st, fmt.Errorf("engine: weight %q: %w", name, err)
		}
		for i := range n {
			wShares[i][name] = ss[i]
		}
	}
	start := time.Now()
	bundles, err := dealer.DealWith(p, batch, n, cfg.enc, cfg.rng)
	if err != nil {
		return nil, st, fmt.Errorf("engine: %w", err)
	}
	st.Dealer = time.Since(start)
	nw := cfg.net
	if nw == nil {
		nw = transport.NewNetwork(n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		party int
		out   *tensor.Dense[uint64]
		st    Stats
		err   error
	}
	results := make(chan result, n)
	ecfg := Config{Plan: p, Batch: batch, Enc: cfg.enc}
	for i := range n {
		go func() {
			out, s, err := RunParty(ctx, ecfg, nw.Transport(i), wShares[i], inShares[i], bundles[i])
			results <- result{i, out, s, err}
		}()
	}
	outs := make([]*tensor.Dense[uint64], n)
	st.Parties = make([]Stats, n)
	var first error
	for range n {
		r := <-results
		if r.err != nil && first == nil {
			first = r.err
			cancel()
		}
		outs[r.party] = r.out
		st.Parties[r.party] = r.st
	}
	for _, s := range st.Parties {
		st.Rounds = max(st.Rounds, s.Rounds)
		st.Messages = max(st.Messages, s.Messages)
		st.BytesSent = max(st.BytesSent, s.BytesSent)
		st.BytesRecv = max(st.BytesRecv, s.BytesRecv)
		st.Online = max(st.Online, s.Online)
		st.Offline = max(st.Offline, s.Offline)
		st.DealerBytes += s.DealerBytes
	}
	if first != nil {
		return nil, st, first
	}
	y, err := share.ReconstructN(outs, n)
	if err != nil {
		return nil, st, fmt.Errorf("engine: output: %w", err)
	}
	return cfg.enc.Decode(y), st, nil
}
