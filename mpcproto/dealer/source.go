package dealer

import (
	"fmt"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Provider hands a party its material, one request at a time, in schedule
// order: the engine's one dependency on where correlated randomness comes
// from. The engine passes the request it is about to serve, so a provider
// can refuse material that does not fit (a desynchronised schedule); it
// checks what it gets (Material.Check) and reads it through the typed
// views (Triple, Trunc, Comparison).
type Provider interface {
	Next(want Request) (*Material, error)
}

// Source is a Provider over a bundle expanded in memory.
type Source struct {
	mats []Material
	pos  int
}

// Expand checks that the bundle was dealt for p and expands its material
// (the party's PRG stream, and for the last party the explicit words) into a
// Source. This is the party's offline work: call it before the session.
func (b *Bundle) Expand(p *plan.Plan) (*Source, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if err := checkPlan(p, b.PlanHash, "bundle was dealt"); err != nil {
		return nil, err
	}
	sched, err := cachedSchedule(p, b.Batch, b.Masked(), b.Parties)
	if err != nil {
		return nil, err
	}
	return expand(sched, b.Seed, b.Party == b.Parties-1, b.Explicit, b.Common)
}

// expand builds one party's Source from its seed, for the last party its
// explicit words, and the words every party receives (common).
func expand(sched []Request, seed share.Seed, last bool, explicit, common []uint64) (*Source, error) {
	prg := share.NewPRG(seed)
	off := 0 // position in the stream
	src := &Source{mats: make([]Material, len(sched))}
	take := func(words *[]uint64, n int, what string, ri int, req Request) ([]uint64, error) {
		if len(*words) < n {
			return nil, fmt.Errorf("dealer: the bundle holds too few %s words for request %d (%s, node %s)", what, ri, req, req.Node)
		}
		out := (*words)[:n:n]
		*words = (*words)[n:]
		return out, nil
	}
	for ri, req := range sched {
		layout, err := req.layout()
		if err != nil {
			return nil, fmt.Errorf("dealer: request %d (%s, node %s): %w", ri, req, req.Node, err)
		}
		m := Material{Req: req, Parts: make([][]uint64, len(layout))}
		for j, pt := range layout {
			switch {
			case pt.common:
				m.Parts[j], err = take(&common, pt.n, "common", ri, req)
			case pt.derived && last:
				m.Parts[j], err = take(&explicit, pt.n, "explicit", ri, req)
			default:
				m.Parts[j] = prg.Uint64s(pt.n)
				if !pt.derived && !pt.own {
					tapDraw(seed, off, &m.Req, j, pt.xor, m.Parts[j])
				}
				off += pt.n
			}
			if err != nil {
				return nil, err
			}
		}
		applyFaults(&m.Req, m.Parts)
		src.mats[ri] = m
	}
	if len(explicit) > 0 || len(common) > 0 {
		return nil, fmt.Errorf("dealer: the bundle holds %d explicit and %d common words more than the plan needs",
			len(explicit), len(common))
	}
	return src, nil
}

// Masked reports whether the bundle was dealt for weight masks.
func (b *Bundle) Masked() bool { return b.Masks != [32]byte{} }

// Next returns the material of the next request; it fails when the
// schedule is exhausted or the next request differs from want.
func (s *Source) Next(want Request) (*Material, error) {
	if s.pos >= len(s.mats) {
		return nil, fmt.Errorf("dealer: material exhausted: no material left for %s (node %s)", want, want.Node)
	}
	m := &s.mats[s.pos]
	if !m.Req.Same(want) {
		return nil, fmt.Errorf("dealer: material %d is %s (node %s), the engine asks for %s (node %s)",
			s.pos, m.Req, m.Req.Node, want, want.Node)
	}
	s.pos++
	return m, nil
}

// Precompute adds f(A, F) to the material of every product with a fixed
// B (weight masks), F by weight name being the opened W - B of the party's
// weight masks, and f(E, B) to every product with a fixed A (E the opened
// W - mask of the left weight, in the same map): it depends on the
// material and the masks only, so a party computes it offline, and Triple
// returns it as AF (EB).
func (s *Source) Precompute(F map[string]*tensor.Dense[uint64]) error {
	for i := range s.mats {
		m := &s.mats[i]
		name := m.Req.fixed()
		if name == "" {
			continue
		}
		f := F[name]
		if f == nil {
			return fmt.Errorf("no opened mask for weight %q", name)
		}
		var pre *tensor.Dense[uint64]
		var err error
		if m.Req.FixedB != "" {
			if len(f.Data) != tensor.Size(m.Req.Y) {
				return fmt.Errorf("precompute for node %s: opened mask of %q has %d values, want %v", m.Req.Node, name, len(f.Data), m.Req.Y)
			}
			pre, err = m.Req.Bilinear(&tensor.Dense[uint64]{Shape: m.Req.X, Data: m.Parts[bilinearA]},
				&tensor.Dense[uint64]{Shape: m.Req.Y, Data: f.Data})
		} else {
			if len(f.Data) != tensor.Size(m.Req.X) {
				return fmt.Errorf("precompute for node %s: opened mask of %q has %d values, want %v", m.Req.Node, name, len(f.Data), m.Req.X)
			}
			pre, err = m.Req.Bilinear(&tensor.Dense[uint64]{Shape: m.Req.X, Data: f.Data},
				&tensor.Dense[uint64]{Shape: m.Req.Y, Data: m.Parts[bilinearB]})
		}
		if err != nil {
			return fmt.Errorf("precompute for node %s: %w", m.Req.Node, err)
		}
		m.Parts = append(m.Parts[:bilinearAF:bilinearAF], pre.Data)
	}
	return nil
}

// Remaining is the number of requests not yet served.
func (s *Source) Remaining() int { return len(s.mats) - s.pos }
