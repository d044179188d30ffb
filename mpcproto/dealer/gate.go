package dealer

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/gridmpc/grid/mpcproto/fss"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Function secret sharing for two holders. With exactly two parties
// (UsesFSS) a ReLU takes a sign gate (package fss) instead of the carry
// circuit: the dealer issues a DCF key pair per element, the parties open
// x + r once and evaluate the keys locally. A gate's material is:
//
//   - r, uniform (the mask of the opened value), additive shares; for a
//     truncation fused with the ReLU (KindTruncReluGate) r is the
//     truncation's mask, followed by r >> f and msb(r) as in KindTrunc,
//     and the one opened value serves both;
//   - the party's DCF root seed per element (2 words), its own draw from
//     its stream (never a share of anything);
//   - shares of m·u_j per element, m the gate's bit (fss.SignAlpha) and
//     u = (1, r) for a ReLU, (1, r >> f, msb(r)) for the fused gate;
//   - the DCF correction words of the n elements (fss.KeyWords(k-1,
//     width) each, laid out level-major by fss.Layout{k-1, width, n}),
//     the same for both parties: sent to each in its bundle's Common
//     words.
//
// A ReLU gate works on k = 64 bits (any value of the ring); the fused gate
// on k = 63 bits, since the truncation it shares its opening with already
// needs |z| < 2^62.
const (
	// ReluGateBits is the k of a ReLU's sign gate: the whole ring.
	ReluGateBits = 64
	// TruncReluGateBits is the k of the sign gate fused with a truncation:
	// the truncation's own bound |z| < 2^62 fits in 63 bits.
	TruncReluGateBits = 63
)

// UsesFSS reports whether a session of n parties may compare with
// function secret sharing (two parties) rather than the carry circuit: it
// does when the keys fit (UsesGates), a choice the dealer and every party
// derive from (plan, batch, n) alone.
func UsesFSS(n int) bool { return n == 2 && !carryForTwo() }

// MaxGateBytes bounds the DCF keys one party receives for a session
// (128 MiB: about 53,000 comparisons). The keys grow with the number of
// comparisons, about 2.5 KB each, where the carry circuit's material is
// expanded from a seed; a session that would need more (a large model or
// batch) takes the carry circuit, whose bundles stay far below the
// network layer's frame limit.
const MaxGateBytes = 128 << 20

// gateBytes is the bytes of DCF keys (roots and correction words) a party
// receives for a schedule.
func gateBytes(sched []Request) int {
	total := 0
	for _, r := range sched {
		if r.Kind == KindReluGate || r.Kind == KindTruncReluGate {
			bits, w := GateShape(r.Kind)
			total += 8 * r.N * (2 + fss.KeyWords(bits-1, w))
		}
	}
	return total
}

// Part indices of gate material: the truncation parts come first in a
// fused gate (truncR, truncShift, truncMSB), so r is part 0 in both.
const (
	gateR = 0
)

// gateBase is the index of the roots part of a gate of kind k: the parts
// roots, mu and correction words follow.
func gateBase(k Kind) int {
	if k == KindTruncReluGate {
		return truncMSB + 1
	}
	return gateR + 1
}

// GateShape is the geometry of a gate kind: its k and the payload width
// of its DCF (1 + the number of multiplicands u).
func GateShape(k Kind) (bits, width int) {
	if k == KindTruncReluGate {
		return TruncReluGateBits, 3
	}
	return ReluGateBits, 2
}

// gateLayout is the layout of the material of n gates of kind k.
func gateLayout(k Kind, n int) []part {
	bits, w := GateShape(k)
	var ps []part
	if k == KindTruncReluGate {
		ps = []part{{n: n}, {n: n, derived: true}, {n: n, derived: true}}
	} else {
		ps = []part{{n: n}}
	}
	return append(ps, part{n: 2 * n, own: true}, part{n: w * n, derived: true},
		part{n: n * fss.KeyWords(bits-1, w), derived: true, common: true})
}

// Gate is a party's share of the material of a vectorised sign gate
// (KindReluGate, KindTruncReluGate), n elements.
type Gate struct {
	// R is the uniform mask of the opened value (additive shares); Trunc
	// holds R with R >> f and msb(R) for a fused gate (else it is empty).
	R     []uint64
	Trunc TruncPair
	// Roots holds the party's DCF root seed of every element, 2 words each.
	Roots []uint64
	// MU holds, per element, shares of m·u_j for j < Width (u_0 = 1).
	MU []uint64
	// CW holds the elements' correction words, KeyWords(Bits-1, Width)
	// each, as fss.Layout{Bits-1, Width, n} lays them out.
	CW []uint64
	// Bits is the gate's k and Width its payload width.
	Bits, Width int
}

// Gate is the material of a sign gate.
func (m *Material) Gate() Gate {
	b := gateBase(m.Req.Kind)
	bits, w := GateShape(m.Req.Kind)
	g := Gate{R: m.Parts[gateR], Roots: m.Parts[b], MU: m.Parts[b+1], CW: m.Parts[b+2], Bits: bits, Width: w}
	if m.Req.Kind == KindTruncReluGate {
		g.Trunc = m.Trunc()
	}
	return g
}

// deriveGate fills the derived parts of gate material from r (its value),
// the roots of both parties (vals[roots] holds party 0's roots then party
// 1's) and, for a fused gate, the truncation's derived parts.
func deriveGate(m *Material, enc uint) error {
	if m.Req.Kind == KindTruncReluGate {
		t := m.Trunc()
		for i, v := range t.R {
			t.Shift[i], t.MSB[i] = v>>enc, v>>63
		}
	}
	b := gateBase(m.Req.Kind)
	g := Gate{R: m.Parts[gateR], Roots: m.Parts[b], MU: m.Parts[b+1], CW: m.Parts[b+2]}
	g.Bits, g.Width = GateShape(m.Req.Kind)
	n := len(g.R)
	if len(g.Roots) != 4*n {
		return fmt.Errorf("gate roots: %d words for %d elements of 2 parties", len(g.Roots), n)
	}
	w := g.Width
	u := make([]uint64, w-1)
	alphas, betas := make([]uint64, n), make([]uint64, n*w)
	roots := [2][]fss.Seed{make([]fss.Seed, n), make([]fss.Seed, n)}
	for i, r := range g.R {
		alpha, bit, err := fss.SignAlpha(r, g.Bits)
		if err != nil {
			return err
		}
		u[0] = r
		if m.Req.Kind == KindTruncReluGate {
			u[0], u[1] = r>>enc, r>>63
		}
		alphas[i] = alpha
		fss.SignPayload(bit, u, betas[i*w:(i+1)*w])
		mu := g.MU[i*w : (i+1)*w]
		mu[0] = bit
		for j, v := range u {
			mu[j+1] = bit * v
		}
		for b := range 2 {
			roots[b][i] = fss.Seed{g.Roots[2*b*n+2*i], g.Roots[2*b*n+2*i+1]}
		}
	}
	return genParallel(fss.Layout{Bits: g.Bits - 1, Width: w, Keys: n}, g.CW, alphas, betas, roots)
}

// genParallel generates a gate request's keys (fss.GenRange), the
// elements split among the cores.
func genParallel(y fss.Layout, cws, alphas, betas []uint64, roots [2][]fss.Seed) error {
	n, w := y.Keys, y.Width
	chunks := min(runtime.GOMAXPROCS(0), 1+n/64)
	errs := make([]error, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*n/chunks, (c+1)*n/chunks
		wg.Go(func() {
			errs[c] = fss.GenRange(y, cws, lo, alphas[lo:hi], betas[lo*w:hi*w], roots[0][lo:hi], roots[1][lo:hi])
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ReluFollows reports whether node i of nodes is a truncating node whose
// output only the Relu right after it reads: the engine then evaluates
// the truncation and the Relu at once, and with two parties the schedule
// replaces the node's truncation and the Relu's gate by one fused gate.
func ReluFollows(nodes []plan.Node, i int) bool {
	if i+1 >= len(nodes) {
		return false
	}
	next := &nodes[i+1]
	return next.Op == plan.Relu && len(next.Inputs) == 1 && next.Inputs[0] == nodes[i].Output
}

// gateRequests turns node i's requests (nodeRequests) into those of a
// two-party session: a Relu's sign test becomes a ReLU gate, or, when it
// follows a truncating node (ReluFollows), a fused gate that replaces
// that node's truncation too; a MaxPool becomes a tree of pairwise
// maxima, max(a, b) = b + ReLU(a - b), one ReLU gate per level
// (MaxGateLevels).
func gateRequests(nodes []plan.Node, i int, reqs []Request) []Request {
	n := &nodes[i]
	last := len(reqs) - 1
	switch {
	case last >= 0 && reqs[last].Kind == KindTrunc && Truncates(n) && ReluFollows(nodes, i):
		return reqs[:last] // the Relu's fused gate truncates
	case n.Op == plan.Relu && len(reqs) == 1 && reqs[0].Kind == KindSign:
		kind := KindReluGate
		if i > 0 && Truncates(&nodes[i-1]) && ReluFollows(nodes, i-1) {
			kind = KindTruncReluGate
		}
		return []Request{{Kind: kind, Node: n.Name, N: reqs[0].N}}
	case n.Op == plan.MaxPool && last >= 0:
		var out []Request
		size := reqs[last].N // the last stage has one group per window
		for _, pairs := range MaxGateLevels(tensor.Size(n.Attrs.Kernel)) {
			out = append(out, Request{Kind: KindReluGate, Node: n.Name, N: pairs * size})
		}
		return out
	}
	return reqs
}

// Truncates reports whether a node's evaluation ends with a truncation,
// the last request of its material: the engine leaves it pending, to fuse
// it with a Relu (or Clip) that follows.
func Truncates(n *plan.Node) bool {
	switch n.Op {
	case plan.MatMul, plan.Conv, plan.Mul, plan.AveragePool, plan.GlobalAveragePool:
		return true
	case plan.MulConst:
		return !ConstIsInteger(n.Attrs.Const)
	}
	return false
}

// MaxGateLevels is the number of pairwise maxima per window at each level
// of the tree that finds the max of k values with ReLU gates: each level
// pairs the values left, an odd one waits (k = 4: 2 then 1).
func MaxGateLevels(k int) []int {
	var out []int
	for ; k > 1; k -= k / 2 {
		out = append(out, k/2)
	}
	return out
}
