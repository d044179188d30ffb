// Package dealer supplies the correlated randomness of the secure engine
// (PySyft's crypto provider, CrypTen's trusted third party): matrix,
// convolution and elementwise Beaver triples, truncation material and the
// material of the vectorised sign test (XOR-shared bits, AND triples, random
// bits for the conversion back to arithmetic shares).
//
// The material of a session is fixed by the public plan and the batch size:
// Schedule lists the requests in the order the engine consumes them, so the
// dealer can prepare a session before its request arrives (the offline
// phase) and the parties know what to expect.
//
// Traffic does not grow with N. Every party gets a 32-byte PRG seed and
// expands its shares of the random parts itself; the parts derived from
// them (C = A·B, r >> f, the AND of two words, ...) are also expanded from
// the seeds by parties 0..N-2, and only the last party receives explicit
// values: the corrections that make the shares add up. A Bundle is one
// party's message from the dealer.
//
// With exactly two parties (UsesFSS) comparisons take function secret
// sharing instead (gate.go): a DCF key pair per comparison (package fss),
// whose root seeds each party draws from its own stream and whose
// correction words, the same for both, every bundle carries as its
// Common words; every party and the dealer derive the choice from N.
//
// Use:
//  1. The dealer calls Deal (or DealWith) and sends bundle i to party i
//     (Marshal / UnmarshalBundle).
//  2. Each party calls Bundle.Expand with the plan to get a Source, and
//     hands it to the engine, which takes the material in schedule order
//     (Provider) and reads each piece through its typed view: a Triple,
//     a TruncPair or a Comparison.
//
// A plan's hash and its schedule per batch are computed once and cached
// (bounded, safe for concurrent use), so a dealer serving many sessions
// of one model does not recompute them; a plan must not change once it
// has been dealt for.
//
// Builds with the gridfault tag add test-only instruments (fault_on.go):
// Faults and SetFaults switch on deliberate privacy faults that keep every
// output correct, and SetDrawHook shows (and lets a test perturb) every
// random part as it is drawn from a party's stream, for the engine's
// privacy tests; FaultSwitch holds such a process-wide switch (the engine
// keeps its own Faults in one). Without the tag they do not exist and
// cost nothing.
package dealer

import (
	"fmt"
	"io"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
)

// MaxParties bounds the number of parties of a session.
const MaxParties = 256

// Deal prepares the material of one evaluation of p with the given batch by
// n parties, with the default encoding. rng supplies the seeds (nil means
// crypto/rand).
func Deal(p *plan.Plan, batch, n int, rng io.Reader) ([]*Bundle, error) {
	return DealWith(p, batch, n, fixed.Default(), rng)
}

// DealWith is Deal with an explicit fixed-point encoding (truncation
// material depends on the number of fractional bits).
func DealWith(p *plan.Plan, batch, n int, enc fixed.Encoding, rng io.Reader) ([]*Bundle, error) {
	if err := checkSession(n, enc); err != nil {
		return nil, err
	}
	return deal(p, batch, n, enc, rng, nil)
}

// DealMasked is DealWith for parties that have opened the weight masks m
// (see Masks): MatMul and Conv on masked weights use the fixed masks as B,
// so their triples carry no B and the online phase opens no weight. The
// bundles name m.ID.
func DealMasked(p *plan.Plan, batch int, enc fixed.Encoding, m *Masks, rng io.Reader) ([]*Bundle, error) {
	if m == nil {
		return nil, fmt.Errorf("dealer: nil masks")
	}
	n := m.Parties
	if n < 2 || n > MaxParties || len(m.Seeds) != n {
		return nil, fmt.Errorf("dealer: masks for %d parties with %d seeds", n, len(m.Seeds))
	}
	if err := enc.Validate(); err != nil {
		return nil, fmt.Errorf("dealer: %w", err)
	}
	if err := checkPlan(p, m.PlanHash, "masks were made"); err != nil {
		return nil, err
	}
	return deal(p, batch, n, enc, rng, m)
}

// checkSession checks a session's number of parties and encoding.
func checkSession(n int, enc fixed.Encoding) error {
	if n < 2 || n > MaxParties {
		return fmt.Errorf("dealer: %d parties: need 2..%d", n, MaxParties)
	}
	if err := enc.Validate(); err != nil {
		return fmt.Errorf("dealer: %w", err)
	}
	return nil
}

// deal deals the bundles of one evaluation of p by n parties, with the
// weight masks m when not nil.
func deal(p *plan.Plan, batch, n int, enc fixed.Encoding, rng io.Reader, m *Masks) ([]*Bundle, error) {
	sched, err := cachedSchedule(p, batch, m != nil, n)
	if err != nil {
		return nil, err
	}
	hash, err := planHash(p)
	if err != nil {
		return nil, err
	}
	var id [32]byte
	var vals map[string][]uint64
	if m != nil {
		if vals, err = m.values(p); err != nil {
			return nil, err
		}
		id = m.ID
	}
	seeds, explicit, common, err := dealSchedule(sched, n, enc, rng, vals)
	if err != nil {
		return nil, err
	}
	bundles := make([]*Bundle, n)
	for i := range n {
		bundles[i] = &Bundle{Party: i, Parties: n, Batch: batch, Frac: enc.Frac, PlanHash: hash, Masks: id,
			Seed: seeds[i], Common: common}
	}
	bundles[n-1].Explicit = explicit
	return bundles, nil
}

// NewSources deals material for an arbitrary schedule and expands it for
// every party at once: an in-process provider for tests of the protocol
// primitives and for custom computations outside a plan.
func NewSources(sched []Request, n int, enc fixed.Encoding, rng io.Reader) ([]*Source, error) {
	if err := checkSession(n, enc); err != nil {
		return nil, err
	}
	seeds, explicit, common, err := dealSchedule(sched, n, enc, rng, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*Source, n)
	for i := range n {
		var ex []uint64
		if i == n-1 {
			ex = explicit
		}
		if out[i], err = expand(sched, seeds[i], i == n-1, ex, common); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dealSchedule draws n seeds and computes the last party's explicit words
// and the words every party receives (common) for the schedule.
func dealSchedule(sched []Request, n int, enc fixed.Encoding, rng io.Reader, masks map[string][]uint64) ([]share.Seed, []uint64, []uint64, error) {
	d := &drawer{seeds: make([]share.Seed, n), prgs: make([]*share.PRG, n), offs: make([]int, n)}
	for i := range n {
		seed, err := share.NewSeed(rng)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("dealer: %w", err)
		}
		d.seeds[i] = seed
		d.prgs[i] = share.NewPRG(seed)
	}
	var explicit, common []uint64
	for ri, req := range sched {
		layout, err := req.layout()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("dealer: request %d (%s, node %s): %w", ri, req, req.Node, err)
		}
		// vals: the random parts' values (every party's draw of an own
		// part, in party order); acc: the combined shares of parties
		// 0..n-2 of the derived parts
		vals, acc := d.draw(&req, layout)
		applyFaults(&req, vals)
		if err := req.derive(enc, vals, masks); err != nil {
			return nil, nil, nil, fmt.Errorf("dealer: request %d (%s, node %s): %w", ri, req, req.Node, err)
		}
		for j, pt := range layout {
			switch {
			case pt.common:
				common = append(common, vals[j]...)
			case pt.derived:
				explicit = appendCorrection(explicit, vals[j], acc[j], pt.xor)
			}
		}
	}
	return d.seeds, explicit, common, nil
}

// drawer draws the parties' streams in the dealer, keeping each party's
// position.
type drawer struct {
	seeds []share.Seed
	prgs  []*share.PRG
	offs  []int
	buf   []uint64
}

// draw draws a request's parts from every party's stream: it returns the
// value of every random part (every party's draw, concatenated, for an
// own part; zeros for a derived one) and, for every derived part, the
// combined shares of parties 0..n-2.
func (d *drawer) draw(req *Request, layout []part) (vals, acc [][]uint64) {
	n := len(d.prgs)
	vals, acc = make([][]uint64, len(layout)), make([][]uint64, len(layout))
	for j, pt := range layout {
		vals[j] = make([]uint64, pt.n)
		if pt.common {
			continue // sent, not drawn
		}
		if pt.own {
			vals[j] = make([]uint64, 0, n*pt.n)
			for i := range n {
				vals[j] = append(vals[j], d.prgs[i].Uint64s(pt.n)...)
				d.offs[i] += pt.n
			}
			continue
		}
		if cap(d.buf) < pt.n {
			d.buf = make([]uint64, pt.n)
		}
		b, into, draws := d.buf[:pt.n], vals[j], n
		if pt.derived {
			acc[j] = make([]uint64, pt.n)
			into, draws = acc[j], n-1 // the last party's share is explicit
		}
		for i := range draws {
			d.prgs[i].Fill(b)
			if !pt.derived {
				tapDraw(d.seeds[i], d.offs[i], req, j, pt.xor, b)
			}
			d.offs[i] += pt.n
			combine(into, b, pt.xor)
		}
	}
	return vals, acc
}

// appendCorrection appends the last party's share of a derived part of
// value v, the other parties' shares combining to a.
func appendCorrection(explicit, v, a []uint64, xor bool) []uint64 {
	for k, x := range v {
		if xor {
			explicit = append(explicit, x^a[k])
		} else {
			explicit = append(explicit, x-a[k])
		}
	}
	return explicit
}

// combine folds a share into an accumulator: XOR or addition mod 2^64.
func combine(acc, s []uint64, xor bool) {
	if xor {
		for i, v := range s {
			acc[i] ^= v
		}
		return
	}
	for i, v := range s {
		acc[i] += v
	}
}
