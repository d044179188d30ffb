//go:build gridfault

package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// Mask provenance: which random word of the dealer masks which opened
// value. The dealer's randomness is the parties' PRG streams (one per
// bundle seed, one per mask seed); dealer.SetDrawHook (gridfault builds)
// shows every random part as it is drawn from a stream, on the dealer's
// side and the party's alike, and lets a test change it there, before any
// derived part is computed from it, so that the material stays consistent
// and the outputs correct. Perturbing one stream word at a time and
// recording every opened value shows which opened values it masks.

// provenanceParties is the number of holders of the provenance runs.
const provenanceParties = 2

// openedView is the opened values of a session in order, whether each is
// XOR-shared, and their rounds.
type openedView struct {
	words  []uint64
	xor    []bool
	rounds []int
}

// provenanceRig runs sessions of the privacy model (N = 2, batch 1) with
// every seed fixed (weight and input shares, mask sets, bundles), so that
// two runs differ only by what a draw hook changes.
type provenanceRig struct {
	p      *plan.Plan
	enc    fixed.Encoding
	shares []map[string]*tensor.Dense[uint64]
	inputs []*tensor.Dense[uint64]
	masks  *dealer.Masks
	wm     []*WeightMasks
	rec    viewRecorder
}

func newProvenanceRig(t *testing.T) *provenanceRig {
	t.Helper()
	const n = provenanceParties
	p, w := privacyModel(rand.New(rand.NewPCG(1, 7)), 0.25)
	g := &provenanceRig{p: p, enc: fixed.Default(), shares: make([]map[string]*tensor.Dense[uint64], n)}
	rng := fixedRand(1)
	split := func(x *tensor.Dense[float64]) []*tensor.Dense[uint64] {
		e, err := g.enc.Encode(x)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := share.Split(e, n, rng)
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	for i := range g.shares {
		g.shares[i] = map[string]*tensor.Dense[uint64]{}
	}
	for _, v := range p.Weights {
		for i, s := range split(w[v.Name]) {
			g.shares[i][v.Name] = s
		}
	}
	g.inputs = split(privacyInputs()[0])
	var err error
	if g.masks, err = dealer.NewMasks(p, n, fixedRand(2)); err != nil {
		t.Fatal(err)
	}
	g.wm = make([]*WeightMasks, n)
	mbs := g.masks.Bundles()
	nw := transport.NewNetwork(n)
	err = runEvery(n, func(ctx context.Context, i int) error {
		var err error
		g.wm[i], _, err = OpenMasks(ctx, p, nw.Transport(i), g.shares[i], mbs[i])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// the dealer computes the masks' values once, on its first deal: do it
	// now, so that later runs draw from the session streams only
	if _, err := dealer.DealMasked(p, 1, g.enc, g.masks, nil); err != nil {
		t.Fatal(err)
	}
	return g
}

// runEvery runs fn for every party concurrently and returns the first
// error (the others are cancelled).
func runEvery(n int, fn func(ctx context.Context, i int) error) error {
	return (&Local{n: n}).runAll(context.Background(), fn)
}

// setup opens a fresh mask set (always the same seeds).
func (g *provenanceRig) setup() (openedView, error) {
	m, err := dealer.NewMasks(g.p, provenanceParties, fixedRand(3))
	if err != nil {
		return openedView{}, err
	}
	mbs := m.Bundles()
	nw := transport.NewNetwork(provenanceParties)
	err = runEvery(provenanceParties, func(ctx context.Context, i int) error {
		_, _, err := openMasks(ctx, g.p, nw.Transport(i), g.shares[i], mbs[i], g.rec.observe)
		return err
	})
	return g.opened(err)
}

// query runs one query on the rig's mask set (always the same seeds).
func (g *provenanceRig) query() (openedView, error) {
	bundles, err := dealer.DealMasked(g.p, 1, g.enc, g.masks, fixedRand(4))
	if err != nil {
		return openedView{}, err
	}
	nw := transport.NewNetwork(provenanceParties)
	err = runEvery(provenanceParties, func(ctx context.Context, i int) error {
		cfg := Config{Plan: g.p, Batch: 1, Enc: g.enc, Masks: g.wm[i], observe: g.rec.observe}
		_, _, err := RunParty(ctx, cfg, nw.Transport(i), g.shares[i], g.inputs[i], bundles[i])
		return err
	})
	return g.opened(err)
}

func (g *provenanceRig) opened(err error) (openedView, error) {
	var v openedView
	v.words, v.xor, v.rounds = g.rec.takeAll()
	return v, err
}

// streamWords records, in a run without perturbation, every random part
// drawn from a stream: its description and length.
func streamWords(run func() (openedView, error)) ([]dealer.Draw, []int, openedView, error) {
	var mu sync.Mutex
	seen := map[string]int{}
	var draws []dealer.Draw
	var sizes []int
	restore := dealer.SetDrawHook(func(d dealer.Draw, words []uint64) {
		if len(words) == 0 {
			return // (B of a masked triple) it would hide the next draw at its offset
		}
		mu.Lock()
		defer mu.Unlock()
		key := fmt.Sprintf("%x/%d", d.Seed, d.Offset)
		if _, ok := seen[key]; !ok {
			seen[key] = len(draws)
			draws = append(draws, d)
			sizes = append(sizes, len(words))
		}
	})
	base, err := run()
	restore()
	order := make([]int, len(draws))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := bytes.Compare(draws[a].Seed[:], draws[b].Seed[:]); c != 0 {
			return c
		}
		return draws[a].Offset - draws[b].Offset
	})
	ds, ns := make([]dealer.Draw, len(order)), make([]int, len(order))
	for i, o := range order {
		ds[i], ns[i] = draws[o], sizes[o]
	}
	return ds, ns, base, err
}

// perturbed runs with one stream word changed: word k of draw d, plus
// delta (XOR delta for an XOR-shared part).
func perturbed(run func() (openedView, error), d dealer.Draw, k int, delta uint64) (openedView, error) {
	pos := d.Offset + k
	restore := dealer.SetDrawHook(func(x dealer.Draw, words []uint64) {
		if x.Seed != d.Seed || pos < x.Offset || pos >= x.Offset+len(words) {
			return
		}
		if d.XOR {
			words[pos-x.Offset] ^= delta
		} else {
			words[pos-x.Offset] += delta
		}
	})
	defer restore()
	return run()
}

// describe names a draw for messages.
func describe(d dealer.Draw, k int) string {
	if d.Weight != "" {
		return fmt.Sprintf("mask stream %x word %d (mask of %s)", d.Seed[:4], d.Offset+k, d.Weight)
	}
	return fmt.Sprintf("stream %x word %d (%s part %d of node %s)", d.Seed[:4], d.Offset+k, d.Req, d.Part, d.Req.Node)
}

// checkProvenance perturbs every random word of run's streams, one at a
// time, and checks that it masks exactly one opened value: exactly one
// value changes by exactly the perturbation (or minus it, for an
// arithmetic mask: c = x + r, d = x - a) with the part's sharing, and any
// other change comes in a later round (values computed from the masked
// one, freshly masked again: the carry bits of a sign test depend on c
// and r, a truncation's rounding on r). Each party's stream must also mask
// every opened value exactly once. The statistic is the number of
// violations, the limit 0. Dealing a ReLU with a = r makes r's words mask
// two values and a's none; rho = 0 on the used bits makes rho's words
// change e on the unused bits only; a mask stream restarted per weight
// makes its first words mask two F values.
func checkProvenance(t *testing.T, name string, run func() (openedView, error)) verdict {
	t.Helper()
	draws, sizes, base, err := streamWords(run)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := rand.New(rand.NewPCG(11, 11))
	hits := map[share.Seed][]int{}
	var violations []string
	words := 0
	for di, d := range draws {
		if hits[d.Seed] == nil {
			hits[d.Seed] = make([]int, len(base.words))
		}
		for k := range sizes[di] {
			words++
			delta := ^uint64(0)
			if !d.XOR {
				delta = r.Uint64() | 1
			}
			got, err := perturbed(run, d, k, delta)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, describe(d, k), err)
			}
			if msg := maskedBy(base, got, d.XOR, delta, hits[d.Seed]); msg != "" {
				violations = append(violations, describe(d, k)+" "+msg)
			}
		}
	}
	for seed, h := range hits {
		for pos, c := range h {
			if c != 1 {
				violations = append(violations, fmt.Sprintf("opened value %d (round %d) is masked by %d words of stream %x",
					pos, base.rounds[pos], c, seed[:4]))
			}
		}
	}
	v := verdict{check: name + ": mask provenance violations", stat: float64(len(violations)),
		detail: fmt.Sprintf("%d random words in %d streams, %d opened values", words, len(hits), len(base.words))}
	if len(violations) > 0 {
		v.detail += fmt.Sprintf("; first: %s", violations[0])
	}
	return v
}

// maskedBy compares a perturbed run with the base one: when exactly one
// opened value changed by the perturbation delta (XOR delta when xor,
// else plus or minus delta), with the same sharing, and every other change
// is in a later round, it counts that value in hits and returns ""; else
// it says what went wrong.
func maskedBy(base, got openedView, xor bool, delta uint64, hits []int) string {
	if len(got.words) != len(base.words) {
		return "changes the number of opened values"
	}
	var masked []int
	firstOther := -1
	for i, b := range base.words {
		g := got.words[i]
		switch {
		case g == b:
		case xor && g^b == delta || !xor && (g-b == delta || b-g == delta):
			masked = append(masked, i)
		case firstOther < 0:
			firstOther = i
		}
	}
	switch {
	case len(masked) == 0 && firstOther < 0:
		return "masks no opened value"
	case len(masked) == 0:
		return fmt.Sprintf("changes opened value %d (round %d) by %#x, not by its perturbation %#x (xor %v)",
			firstOther, base.rounds[firstOther], got.words[firstOther]-base.words[firstOther], delta, xor)
	case len(masked) > 1:
		return fmt.Sprintf("masks %d opened values: %d (round %d) and %d (round %d)",
			len(masked), masked[0], base.rounds[masked[0]], masked[1], base.rounds[masked[1]])
	}
	m := masked[0]
	if base.xor[m] != xor {
		return fmt.Sprintf("masks opened value %d (round %d) with the wrong sharing", m, base.rounds[m])
	}
	if firstOther >= 0 && base.rounds[firstOther] <= base.rounds[m] {
		return fmt.Sprintf("masks opened value %d (round %d) and changes %d (round %d)",
			m, base.rounds[m], firstOther, base.rounds[firstOther])
	}
	hits[m]++
	return ""
}

// TestMaskProvenance: over the privacy model (MatMul and Conv on masked
// weights, ReLU fused and alone, MaxPool, AveragePool, truncations), every
// random word of the dealer masks exactly one opened value, in the mask
// opening and in a query.
func TestMaskProvenance(t *testing.T) {
	g := newProvenanceRig(t)
	for _, v := range []verdict{checkProvenance(t, "mask opening", g.setup), checkProvenance(t, "query", g.query)} {
		t.Log(v)
		if v.leak() {
			t.Errorf("%v", v)
		}
	}
}
