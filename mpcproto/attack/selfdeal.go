package attack

import (
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// DefaultOffset is the offset M SelfDeal adds to a hidden pre-activation to
// force it on (and subtracts to force it off), in real terms: large against
// any ordinary weight (a unit is forced off only if M > |x·W1[:,k] + b1_k|),
// small enough that 2M·|W2| stays far below the engine's safe range of
// products (2^(62-2f), 2^30 with 16 fractional bits).
const DefaultOffset = 1 << 12

// offsetHeadroom is the factor SelfDealWith keeps between 2M and the safe
// range of products: the second layer multiplies pre-activations of up to
// 2M + |b1| + |W1| by W2, so weights |W2| up to 2^10 stay in range.
const offsetHeadroom = 1 << 10

// Options configures SelfDealWith; the zero value gives SelfDeal's defaults.
type Options struct {
	// Offset is M, the offset forcing a hidden unit on (+M) or off (−M);
	// 0 means DefaultOffset (capped by the safe range of the encoding).
	Offset float64
	// Enc is the fixed-point encoding of the session; the zero value means
	// fixed.Default() (the attack needs fractional bits).
	Enc fixed.Encoding
	// Rand supplies the dealer's seeds; nil means crypto/rand.
	Rand io.Reader
}

// Row describes what one row of the attack's batch does.
type Row struct {
	// Input is the index i of the unit vector e_i fed in this row, or −1
	// for the zero vector.
	Input int
	// Unit is the hidden unit forced on in this row (all others are forced
	// off), or −1 when every unit is forced off.
	Unit int
	// Offset is what is added to Unit's pre-activation (M or 2M); the
	// other units get −M.
	Offset float64
}

// Session is one self-dealt attack session: what a malicious client sends
// (its input, to be shared among the holders, and the dealer bundles, bundle
// i for holder i) and what it needs to read the weights off the output.
type Session struct {
	// Plan is the attacked model's public plan.
	Plan *plan.Plan
	// Parties is the number of holders N; Batch the number of rows.
	Parties, Batch int
	// Enc is the session's fixed-point encoding (the bundles' precision).
	Enc fixed.Encoding
	// Offset is M in real terms.
	Offset float64
	// Input is the client's input batch [Batch, D]: zeros and unit vectors.
	Input *tensor.Dense[float64]
	// Bundles are honest dealer.Deal bundles whose last one has the first
	// MatMul's C words edited (see the package documentation).
	Bundles []*dealer.Bundle
	// Rows describes every row of the batch, in order.
	Rows []Row
	net  mlp
}

// mlp is the shape of a Linear → ReLU → Linear plan with biases: the names
// of its weights and its widths.
type mlp struct {
	first          string // name of the first MatMul node
	w1, b1, w2, b2 string
	d, h, o        int
}

// SelfDeal prepares the attack on plan p (Linear → ReLU → Linear with
// biases, input [-1, D]) for n holders with the default options: the
// tampered bundles and the input batch of 1 + 2H + H·D rows.
func SelfDeal(p *plan.Plan, n int) (*Session, error) {
	return SelfDealWith(p, n, Options{})
}

// SelfDealWith is SelfDeal with explicit options.
func SelfDealWith(p *plan.Plan, n int, o Options) (*Session, error) {
	net, err := parseMLP(p)
	if err != nil {
		return nil, err
	}
	enc := o.Enc
	if enc == (fixed.Encoding{}) {
		enc = fixed.Default()
	}
	if err := enc.Validate(); err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	limit := math.Ldexp(1, 62-2*int(enc.Frac)) / offsetHeadroom // bound on 2M
	m := o.Offset
	if m == 0 {
		m = min(DefaultOffset, limit/2)
	}
	if !(m >= 1) || 2*m > limit {
		return nil, fmt.Errorf("attack: offset %g out of range: need 1 <= M <= %g with %d fractional bits",
			m, limit/2, enc.Frac)
	}
	s := &Session{Plan: p, Parties: n, Enc: enc, Offset: m, net: net, Rows: layout(net, m)}
	s.Batch = len(s.Rows)
	s.Input = tensor.New[float64](s.Batch, net.d)
	for r, row := range s.Rows {
		if row.Input >= 0 {
			s.Input.Data[r*net.d+row.Input] = 1
		}
	}
	bundles, err := dealer.DealWith(p, s.Batch, n, enc, o.Rand)
	if err != nil {
		return nil, fmt.Errorf("attack: deal: %w", err)
	}
	if err := s.tamper(bundles[n-1]); err != nil {
		return nil, err
	}
	s.Bundles = bundles
	return s, nil
}

// layout lists the rows of the attack batch (see the package documentation).
func layout(net mlp, m float64) []Row {
	rows := []Row{{Input: -1, Unit: -1}}
	for k := range net.h {
		rows = append(rows, Row{Input: -1, Unit: k, Offset: m})
	}
	for k := range net.h {
		rows = append(rows, Row{Input: -1, Unit: k, Offset: 2 * m})
	}
	for k := range net.h {
		for i := range net.d {
			rows = append(rows, Row{Input: i, Unit: k, Offset: m})
		}
	}
	return rows
}

// tamper adds the rows' offsets to the last party's explicit C words of the
// first MatMul's triple, at the product's scale (2f fractional bits).
func (s *Session) tamper(last *dealer.Bundle) error {
	sched, err := dealer.Schedule(s.Plan, s.Batch)
	if err != nil {
		return fmt.Errorf("attack: schedule: %w", err)
	}
	h := s.net.h
	want := dealer.Request{Kind: dealer.KindMatMul, X: []int{s.Batch, s.net.d}, Y: []int{s.net.d, h}}
	if len(sched) == 0 || sched[0].Node != s.net.first || !sched[0].Same(want) {
		return fmt.Errorf("attack: the schedule does not start with node %s's %s", s.net.first, want)
	}
	if len(last.Explicit) < s.Batch*h {
		return fmt.Errorf("attack: the last bundle holds %d explicit words, fewer than the %d of C",
			len(last.Explicit), s.Batch*h)
	}
	scale := math.Ldexp(1, 2*int(s.Enc.Frac))
	off := uint64(int64(math.Round(-s.Offset * scale)))
	for r, row := range s.Rows {
		on := uint64(int64(math.Round(row.Offset * scale)))
		for k := range h {
			d := off
			if k == row.Unit {
				d = on
			}
			last.Explicit[r*h+k] += d
		}
	}
	return nil
}

// parseMLP checks that p is MatMul(input, W1, b1) → Relu → MatMul(., W2,
// b2) with the output last, the input [-1, D], and reads the widths.
func parseMLP(p *plan.Plan) (mlp, error) {
	var net mlp
	if p == nil {
		return net, fmt.Errorf("attack: nil plan")
	}
	if err := p.Validate(); err != nil {
		return net, fmt.Errorf("attack: %w", err)
	}
	ns := p.Nodes
	if len(ns) != 3 || ns[0].Op != plan.MatMul || ns[1].Op != plan.Relu || ns[2].Op != plan.MatMul ||
		len(ns[0].Inputs) != 3 || len(ns[2].Inputs) != 3 || ns[0].Inputs[0] != p.Input.Name ||
		!slices.Equal(ns[1].Inputs, []string{ns[0].Output}) || ns[2].Inputs[0] != ns[1].Output ||
		ns[2].Output != p.Output {
		return net, fmt.Errorf("attack: plan is not MatMul(input, W1, b1) -> Relu -> MatMul(., W2, b2) with biases")
	}
	if len(p.Input.Shape) != 2 || p.Input.Shape[0] != -1 {
		return net, fmt.Errorf("attack: input shape %v: want [-1, D]", p.Input.Shape)
	}
	net.first = ns[0].Name
	net.w1, net.b1, net.w2, net.b2 = ns[0].Inputs[1], ns[0].Inputs[2], ns[2].Inputs[1], ns[2].Inputs[2]
	shapes := make(map[string][]int, len(p.Weights))
	for _, w := range p.Weights {
		shapes[w.Name] = w.Shape
	}
	w1, w2 := shapes[net.w1], shapes[net.w2]
	if len(w1) != 2 || len(w2) != 2 {
		return net, fmt.Errorf("attack: weights %s %v and %s %v: want declared matrices", net.w1, w1, net.w2, w2)
	}
	net.d, net.h, net.o = w1[0], w1[1], w2[1]
	if w2[0] != net.h || !slices.Equal(shapes[net.b1], []int{net.h}) || !slices.Equal(shapes[net.b2], []int{net.o}) {
		return net, fmt.Errorf("attack: weights %s %v, %s %v, %s %v, %s %v do not chain",
			net.w1, w1, net.b1, shapes[net.b1], net.w2, w2, net.b2, shapes[net.b2])
	}
	return net, nil
}
