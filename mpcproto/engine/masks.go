package engine

import (
	"context"
	"encoding/binary"
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
	return openMasks(ctx, p, t, weights, mb, nil)
}

// openMasks is OpenMasks with an observer of the opened values (tests).
func openMasks(ctx context.Context, p *plan.Plan, t transport.Transport,
	weights map[string]*tensor.Dense[uint64], mb *dealer.MaskBundle, observe observer) (*WeightMasks, Stats, error) {
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
	pa := &party{ctx: pctx, cancel: cancel, t: t, n: t.Parties(), self: t.Self(), observe: observe}
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

const weightMasksMagic = "GRDW"

// Marshal encodes the party's mask state for storage next to its weight
// shares (it is as secret as they are: B with F gives W).
func (wm *WeightMasks) Marshal() ([]byte, error) {
	names := make([]string, 0, len(wm.B))
	for name := range wm.B {
		names = append(names, name)
	}
	slices.Sort(names)
	out := append([]byte(weightMasksMagic), 1)
	out = append(out, wm.ID[:]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(names)))
	for _, name := range names {
		b, f := wm.B[name], wm.F[name]
		if b == nil || f == nil || !slices.Equal(b.Shape, f.Shape) || len(b.Data) != len(f.Data) ||
			len(b.Data) != tensor.Size(b.Shape) {
			return nil, fmt.Errorf("engine: weight masks of %q are inconsistent", name)
		}
		if len(name) > 1<<16-1 || len(b.Shape) > 255 {
			return nil, fmt.Errorf("engine: weight masks of %q: name or rank too large", name)
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(len(name)))
		out = append(out, name...)
		out = append(out, byte(len(b.Shape)))
		for _, d := range b.Shape {
			out = binary.LittleEndian.AppendUint32(out, uint32(d))
		}
		for _, v := range b.Data {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
		for _, v := range f.Data {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	}
	if len(wm.F) != len(wm.B) {
		return nil, errors.New("engine: weight masks hold different weights in B and F")
	}
	return out, nil
}

// UnmarshalWeightMasks decodes a mask state written by Marshal, checking
// every length against the data (it allocates no more than len(data)).
func UnmarshalWeightMasks(data []byte) (*WeightMasks, error) {
	r := data
	take := func(n int) ([]byte, error) {
		if n < 0 || len(r) < n {
			return nil, fmt.Errorf("engine: weight masks truncated (need %d bytes, %d left)", n, len(r))
		}
		b := r[:n]
		r = r[n:]
		return b, nil
	}
	head, err := take(4 + 1 + 32 + 4)
	if err != nil {
		return nil, err
	}
	if string(head[:4]) != weightMasksMagic || head[4] != 1 {
		return nil, errors.New("engine: not a weight mask state (bad magic or version)")
	}
	wm := &WeightMasks{B: map[string]*tensor.Dense[uint64]{}, F: map[string]*tensor.Dense[uint64]{}}
	copy(wm.ID[:], head[5:37])
	count := binary.LittleEndian.Uint32(head[37:])
	for i := range count {
		nl, err := take(2)
		if err != nil {
			return nil, err
		}
		name, err := take(int(binary.LittleEndian.Uint16(nl)))
		if err != nil {
			return nil, err
		}
		if _, dup := wm.B[string(name)]; dup {
			return nil, fmt.Errorf("engine: weight masks: entry %d repeats %q", i, name)
		}
		rank, err := take(1)
		if err != nil {
			return nil, err
		}
		dims, err := take(4 * int(rank[0]))
		if err != nil {
			return nil, err
		}
		shape := make([]int, rank[0])
		size := 1
		for j := range shape {
			shape[j] = int(binary.LittleEndian.Uint32(dims[4*j:]))
			if shape[j] != 0 && size > len(r)/16/shape[j] {
				return nil, fmt.Errorf("engine: weight masks of %q: shape larger than the data", name)
			}
			size *= shape[j]
		}
		words, err := take(16 * size)
		if err != nil {
			return nil, err
		}
		b, f := tensor.New[uint64](shape...), tensor.New[uint64](shape...)
		for j := range size {
			b.Data[j] = binary.LittleEndian.Uint64(words[8*j:])
			f.Data[j] = binary.LittleEndian.Uint64(words[8*(size+j):])
		}
		wm.B[string(name)], wm.F[string(name)] = b, f
	}
	if len(r) != 0 {
		return nil, fmt.Errorf("engine: weight masks: %d bytes after the last entry", len(r))
	}
	return wm, nil
}
