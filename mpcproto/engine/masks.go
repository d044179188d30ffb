package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// WeightMasks is a party's long-term state for the "mask weights once"
// optimisation (see dealer.Masks): its shares of the masks B and the public
// F = W - B, by weight name, for one plan and one dealer's mask set. A
// holder keeps it with its weight shares and passes it in Config.Masks to
// every session whose bundle was dealt with the same masks
// (dealer.DealMasked). F is public among the holders but must not reach
// the dealer (with B it gives W).
type WeightMasks struct {
	// ID is the mask set's ID (dealer.Masks.ID).
	ID [32]byte
	// B holds this party's shares of the masks, F the opened W - B.
	B, F map[string]*tensor.Dense[uint64]
}

// OpenMasks is the one-time setup of weight masks, run by every holder
// together after the dealer sends the mask bundles: it expands the party's
// shares of B and opens F = W - B for every masked weight, in one round.
func OpenMasks(ctx context.Context, p *plan.Plan, t transport.Transport,
	weights map[string]*tensor.Dense[uint64], mb *dealer.MaskBundle) (*WeightMasks, Stats, error) {
	var st Stats
	if p == nil || t == nil || mb == nil {
		return nil, st, errors.New("engine: open masks: nil plan, transport or mask bundle")
	}
	if mb.Party != t.Self() || mb.Parties != t.Parties() {
		return nil, st, fmt.Errorf("engine: open masks: mask bundle is for party %d of %d, this is party %d of %d",
			mb.Party, mb.Parties, t.Self(), t.Parties())
	}
	start := time.Now()
	bs, err := mb.Expand(p)
	if err != nil {
		return nil, st, fmt.Errorf("engine: open masks: party %d: %w", t.Self(), err)
	}
	st.Offline = time.Since(start)
	names := dealer.MaskedWeights(p)
	var diff []uint64
	for _, name := range names {
		w, ok := weights[name]
		if !ok || w == nil {
			return nil, st, fmt.Errorf("engine: open masks: party %d: weight share %q is missing", t.Self(), name)
		}
		b := bs[name]
		if !slices.Equal(w.Shape, b.Shape) || len(w.Data) != len(b.Data) {
			return nil, st, fmt.Errorf("engine: open masks: party %d: weight share %q has shape %v, the plan declares %v",
				t.Self(), name, w.Shape, b.Shape)
		}
		for i, v := range w.Data {
			diff = append(diff, v-b.Data[i])
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pa := &party{ctx: pctx, cancel: cancel, t: t, n: t.Parties(), self: t.Self()}
	start = time.Now()
	op, err := pa.open(arith(diff))
	st = pa.stats(st, start)
	if err != nil {
		return nil, st, fmt.Errorf("engine: open masks: %w", err)
	}
	wm := &WeightMasks{ID: mb.ID, B: bs, F: make(map[string]*tensor.Dense[uint64], len(names))}
	off := 0
	for _, name := range names {
		b := bs[name]
		wm.F[name] = &tensor.Dense[uint64]{Shape: b.Shape, Data: op[0][off : off+len(b.Data)]}
		off += len(b.Data)
	}
	return wm, st, nil
}

// fixedB names the weight whose mask serves as B for a product with the
// value named name, or "" when it has none.
func (p *party) fixedB(name string) string {
	if p.masks == nil {
		return ""
	}
	if _, ok := p.masks.B[name]; ok {
		return name
	}
	return ""
}
