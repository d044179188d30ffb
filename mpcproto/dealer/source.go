package dealer

import (
	"fmt"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
)

// Provider hands a party its material, one request at a time, in schedule
// order. The engine passes the request it is about to serve, so a provider
// can refuse material that does not fit (a desynchronised schedule).
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
	hash, err := planHash(p)
	if err != nil {
		return nil, err
	}
	if hash != b.PlanHash {
		return nil, fmt.Errorf("dealer: bundle was dealt for plan %x, not %x", b.PlanHash[:8], hash[:8])
	}
	sched, err := ScheduleWith(p, b.Batch, b.Masked())
	if err != nil {
		return nil, err
	}
	return expand(sched, b.Seed, b.Party == b.Parties-1, b.Explicit)
}

// expand builds one party's Source from its seed and, for the last party,
// its explicit words.
func expand(sched []Request, seed share.Seed, last bool, explicit []uint64) (*Source, error) {
	prg := share.NewPRG(seed)
	off := 0 // position in the stream
	src := &Source{mats: make([]Material, len(sched))}
	for ri, req := range sched {
		layout, err := req.layout()
		if err != nil {
			return nil, fmt.Errorf("dealer: request %d (%s, node %s): %w", ri, req, req.Node, err)
		}
		m := Material{Req: req, Parts: make([][]uint64, len(layout))}
		for j, pt := range layout {
			if pt.derived && last {
				if len(explicit) < pt.n {
					return nil, fmt.Errorf("dealer: the last party's bundle holds too few explicit words for request %d (%s, node %s)",
						ri, req, req.Node)
				}
				m.Parts[j] = explicit[:pt.n:pt.n]
				explicit = explicit[pt.n:]
				continue
			}
			m.Parts[j] = prg.Uint64s(pt.n)
			if !pt.derived {
				tapDraw(seed, off, &m.Req, j, pt.xor, m.Parts[j])
			}
			off += pt.n
		}
		applyFaults(&m.Req, m.Parts)
		src.mats[ri] = m
	}
	if len(explicit) > 0 {
		return nil, fmt.Errorf("dealer: the last party's bundle holds %d explicit words more than the plan needs", len(explicit))
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

// Materials returns the material of every request, in schedule order, for
// a party's offline precomputation (the engine adds A·F for masked
// weights). The slice is the Source's own: changes are seen by Next.
func (s *Source) Materials() []Material { return s.mats }

// Remaining is the number of requests not yet served.
func (s *Source) Remaining() int { return len(s.mats) - s.pos }
