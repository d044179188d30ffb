package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// privacyModel is a small CNN with every op whose openings the privacy
// tests examine, on masked weights: conv 3x3 (2 channels, pad 1) and ReLU
// (fused with the conv's truncation), 2x2 max pool, 2x2 average pool
// (truncation), flatten, fc 2 -> 3 (masked weight, truncation), a bias Add
// and a ReLU alone; beside the fc, a branch of the piecewise ops and a
// weight on the left: Sigmoid (comparisons, x², truncated pieces), W·s
// with W [3, 2] on the left (its mask serving as A), a Clip fused with
// that product's truncation, added to the fc's output (|branch| <= 1).
// The weights come from r, every last bias is bias (a large negative one
// makes every output 0).
var clipLo, clipHi = -1.0, 1.0

func privacyModel(r *rand.Rand, bias float64) (*plan.Plan, plan.Weights) {
	pool := plan.Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{-1, 1, 4, 4}},
		Output:  "y",
		Weights: []plan.Value{{Name: "k", Shape: []int{2, 1, 3, 3}}, {Name: "kb", Shape: []int{2}},
			{Name: "w", Shape: []int{2, 3}}, {Name: "b", Shape: []int{3}}, {Name: "wl", Shape: []int{3, 2}}},
		Nodes: []plan.Node{
			{Name: "conv", Op: plan.Conv, Inputs: []string{"x", "k", "kb"}, Output: "c", Attrs: plan.Attrs{Pads: []int{1, 1, 1, 1}}},
			{Name: "relu", Op: plan.Relu, Inputs: []string{"c"}, Output: "r"},
			{Name: "max", Op: plan.MaxPool, Inputs: []string{"r"}, Output: "m", Attrs: pool},
			{Name: "avg", Op: plan.AveragePool, Inputs: []string{"m"}, Output: "a", Attrs: pool},
			{Name: "flat", Op: plan.Flatten, Inputs: []string{"a"}, Output: "f", Attrs: plan.Attrs{Axis: 1}},
			{Name: "fc", Op: plan.MatMul, Inputs: []string{"f", "w"}, Output: "z0"},
			{Name: "sig", Op: plan.Sigmoid, Inputs: []string{"f"}, Output: "s"},
			{Name: "col", Op: plan.Reshape, Inputs: []string{"s"}, Output: "sc", Attrs: plan.Attrs{Shape: []int{0, 2, 1}}},
			{Name: "left", Op: plan.MatMul, Inputs: []string{"wl", "sc"}, Output: "l"},
			{Name: "clip", Op: plan.Clip, Inputs: []string{"l"}, Output: "lc", Attrs: plan.Attrs{Min: &clipLo, Max: &clipHi}},
			{Name: "row", Op: plan.Reshape, Inputs: []string{"lc"}, Output: "lr", Attrs: plan.Attrs{Shape: []int{0, 3}}},
			{Name: "branch", Op: plan.Add, Inputs: []string{"z0", "lr"}, Output: "z"},
			{Name: "add", Op: plan.Add, Inputs: []string{"z", "b"}, Output: "zb"},
			{Name: "relu2", Op: plan.Relu, Inputs: []string{"zb"}, Output: "y"},
		},
	}
	w := plan.Weights{"k": uniform(r, 1.0/3, 2, 1, 3, 3), "kb": uniform(r, 0.1, 2), "w": uniform(r, 1, 2, 3),
		"b": &tensor.Dense[float64]{Shape: []int{3}, Data: []float64{bias, bias, bias}}, "wl": uniform(r, 0.5, 3, 2)}
	return p, w
}

// privacyInputs are the two secret inputs of the query views.
func privacyInputs() [2]*tensor.Dense[float64] {
	return [2]*tensor.Dense[float64]{randVals(rand.New(rand.NewPCG(3, 3)), 1, 1, 4, 4),
		randVals(rand.New(rand.NewPCG(4, 4)), 1, 1, 4, 4)}
}

// viewRecorder records the values party 0 opens (every holder opens the
// same ones), with whether each is XOR-shared and its round; its observe
// method is the parties' observer.
type viewRecorder struct {
	mu     sync.Mutex
	words  []uint64
	xor    []bool
	rounds []int
}

func (r *viewRecorder) observe(self, round int, xor []bool, vals [][]uint64) {
	if self != 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range vals {
		r.words = append(r.words, v...)
		for range v {
			r.xor = append(r.xor, xor[k])
			r.rounds = append(r.rounds, round)
		}
	}
}

// take returns the words recorded since the last take.
func (r *viewRecorder) take() []uint64 {
	w, _, _ := r.takeAll()
	return w
}

// takeAll returns the words recorded since the last take, whether each is
// XOR-shared, and their rounds.
func (r *viewRecorder) takeAll() (words []uint64, xor []bool, rounds []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	words, xor, rounds = r.words, r.xor, r.rounds
	r.words, r.xor, r.rounds = nil, nil, nil
	return words, xor, rounds
}

// privacySessions is the number of sessions per secret of the holder views.
const privacySessions = 24

// privacySessionsFSS is privacySessions for the two-holder query views,
// whose DCF correction words make them about 16,000 words long: with 32
// sessions a uniform bit stays constant by chance about 0.001 times per
// view, against 0.25 with 24 (checkConstantBits).
const privacySessionsFSS = 32

// holderViews records what the holders of the privacy model (N = 3) see:
//   - setup: for each of two weight sets, `sessions` deployments, each with
//     a fresh mask set, recording the mask opening F = W - B;
//   - query: on one deployment (one mask set for every query), `sessions`
//     queries on each of two inputs, interleaved, each recorded as the
//     opened values (the first `opened` words) followed by the last
//     holder's explicit dealer words.
func holderViews(t *testing.T, sessions int) (setup, query [2][][]uint64, opened int) {
	t.Helper()
	ctx := context.Background()
	var rec viewRecorder
	const n = 3
	for c := range 2 {
		p, w := privacyModel(rand.New(rand.NewPCG(uint64(c+1), 7)), 0.25)
		for range sessions {
			if _, err := NewLocal(ctx, p, w, n, WithWeightMasks(), withObserver(rec.observe)); err != nil {
				t.Fatal(err)
			}
			setup[c] = append(setup[c], rec.take())
		}
	}
	query, opened = queryViews(t, sessions, n)
	return setup, query, opened
}

// queryViews records the query views of holderViews for n holders: with
// two, the comparisons take DCF keys (dealer.UsesFSS), and the view
// also holds the correction words both holders receive (the bundle's
// common words).
func queryViews(t *testing.T, sessions, n int) (query [2][][]uint64, opened int) {
	t.Helper()
	ctx := context.Background()
	var rec viewRecorder
	p, w := privacyModel(rand.New(rand.NewPCG(1, 7)), 0.25)
	l, err := NewLocal(ctx, p, w, n, WithWeightMasks(), withObserver(rec.observe))
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	for range sessions {
		for c, x := range privacyInputs() {
			r, err := l.session(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			op := rec.take()
			opened = len(op)
			last := r.bundles[n-1]
			query[c] = append(query[c], append(append(op, last.Explicit...), last.Common...))
		}
	}
	return query, opened
}

// checkClientRepeats holds fixed everything the client and the dealer
// know (weight shares, mask set, input shares, bundles: one fixedRand seed
// per trial) and runs the privacy model three times: twice with weights A,
// once with weights B, whose last biases (-100, -120) make every output 0.
// It counts the holders' output share words that repeat (near) between the
// two runs with A: such a share has no fresh randomness, it is a function
// of what the client and the dealer know and of the weights (the detail
// counts those that change between A and B although the output does not).
// Re-randomised shares never repeat (probability 2^-38 per word).
func checkClientRepeats(t *testing.T, trials int) verdict {
	t.Helper()
	ctx := context.Background()
	const n = 3
	x := randVals(rand.New(rand.NewPCG(5, 5)), 1, 1, 4, 4)
	repeats, differ, total := 0, 0, 0
	for trial := range trials {
		var outs [3][]uint64
		for run, bias := range []float64{-100, -100, -120} {
			p, w := privacyModel(rand.New(rand.NewPCG(1, 7)), bias)
			l, err := NewLocal(ctx, p, w, n, WithWeightMasks(), WithRand(fixedRand(uint64(100+trial))))
			if err != nil {
				t.Fatal(err)
			}
			r, err := l.session(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			y, err := share.ReconstructN(r.outs, n)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range y.Data {
				if v != 0 {
					t.Fatalf("client view: output element %d is %#x, want 0 (the final ReLU zeroes it)", i, v)
				}
			}
			for _, o := range r.outs {
				outs[run] = append(outs[run], o.Data...)
			}
		}
		for i := range outs[0] {
			total++
			if near(outs[0][i], outs[1][i]) {
				repeats++
				if outs[0][i] != outs[2][i] {
					differ++
				}
			}
		}
	}
	return verdict{check: "client: output shares without fresh randomness", stat: float64(repeats) / float64(total),
		limit: 0.05, detail: fmt.Sprintf("%d of %d holder output words repeat with the same client and dealer seeds, "+
			"%d of them change with the weights (same output)", repeats, total, differ)}
}

// reluHead is an fc 4 -> 3 layer with bias and a final ReLU (fused with
// the fc's truncation).
func reluHead(r *rand.Rand) (*plan.Plan, plan.Weights) {
	p := onePlan([]int{-1, 4}, "y", []plan.Value{{Name: "w", Shape: []int{4, 3}}, {Name: "b", Shape: []int{3}}},
		plan.Node{Name: "fc", Op: plan.MatMul, Inputs: []string{"x", "w", "b"}, Output: "z"},
		plan.Node{Name: "relu", Op: plan.Relu, Inputs: []string{"z"}, Output: "y"})
	return p, plan.Weights{"w": uniform(r, 1, 4, 3), "b": uniform(r, 0.5, 3)}
}

// TestPrivacySecondOrder runs every statistical privacy check on a model
// with every op kind and masked weights, and asserts that none finds a
// leak: the holders' view of the mask opening (many mask sets) and of
// queries (many queries on one mask set, the last holder's explicit dealer
// words included), first order (constant bits) and second order (sums,
// differences and XORs of pairs of words near a function of the secret),
// and the client's view of the output shares, with the dealer's help.
func TestPrivacySecondOrder(t *testing.T) {
	for _, v := range privacyVerdicts(t) {
		t.Log(v)
		if v.leak() {
			t.Errorf("privacy leak: %v", v)
		}
	}
}

// privacyVerdicts runs every statistical privacy check on fresh views.
func privacyVerdicts(t *testing.T) []verdict {
	t.Helper()
	setup, query, opened := holderViews(t, privacySessions)
	query2, opened2 := queryViews(t, privacySessionsFSS, 2)
	const q, q2 = "queries on one mask set, last holder", "queries by two holders (DCF keys), last holder"
	return []verdict{
		checkConstantBits("setup F = W - B", setup[0], setup[1]),
		checkDetermined("setup F = W - B", len(setup[0][0]), setup[0], setup[1]),
		checkConstantBits(q, query[0], query[1]),
		checkDetermined(q, opened, query[0], query[1]),
		checkConstantBits(q2, query2[0], query2[1]),
		checkDetermined(q2, opened2, query2[0], query2[1]),
		checkClientRepeats(t, 3),
		checkClientExtract(t, 4),
	}
}

// checkClientExtract is the attack that output re-randomisation defeats:
// a client colluding with the dealer reads the pre-activations of a final
// ReLU (fused with its fc's truncation, reluHead, N = 3) off the last
// holder's output share, the ones the ReLU zeroes included. The dealer
// knows the last holder's material: of the truncation r >> f and msb(r),
// of the sign test a, rho and the last holder's shares of rho and a·rho.
// The last holder's share of the truncated t is
// -(r >> f) + 2^(64-f)·msb(r)·[msb(c) = 0], and its output share is
// t - (a·rho + d·rho) when e = 0, a·rho + d·rho when e = 1, with d = t - a:
// for each guess of the bits msb(c) and e, the attack solves for d (when
// the rho share is odd, about half the time) and keeps t = d + a when it
// is the only plausible guess (|t| < 2^40, sign e XOR rho). The statistic
// is the fraction of zeroed pre-activations recovered to within 2^-14:
// about 0.5 from raw shares, 0 from re-randomised ones.
func checkClientExtract(t *testing.T, sessions int) verdict {
	t.Helper()
	ctx := context.Background()
	const n = 3
	r := rand.New(rand.NewPCG(6, 6))
	p, w := reluHead(r)
	l, err := NewLocal(ctx, p, w, n, WithWeightMasks())
	if err != nil {
		t.Fatal(err)
	}
	pre := onePlan(p.Input.Shape, "z", p.Weights, p.Nodes[0])
	recovered, zeroed := 0, 0
	for range sessions {
		x := randVals(r, 16, 4)
		run, err := l.session(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		z, err := plan.EvalPlain(pre, w, x)
		if err != nil {
			t.Fatal(err)
		}
		guess := extractPreActivations(t, p, run, l.cfg.enc.Frac)
		for k, v := range z.Data {
			if v >= 0 {
				continue
			}
			zeroed++
			if g, ok := guess[k]; ok && math.Abs(float64(int64(g))/float64(uint64(1)<<l.cfg.enc.Frac)-v) <= 1.0/(1<<14) {
				recovered++
			}
		}
	}
	return verdict{check: "client: final ReLU pre-activations read off output shares with the dealer",
		stat: float64(recovered) / float64(zeroed), limit: 0.02,
		detail: fmt.Sprintf("%d of %d zeroed pre-activations recovered", recovered, zeroed)}
}

// extractPreActivations is checkClientExtract's attack on one session: the
// pre-activation it finds for each element (those it cannot pin down are
// absent).
func extractPreActivations(t *testing.T, p *plan.Plan, run localRun, frac uint) map[int]uint64 {
	t.Helper()
	n := len(run.bundles)
	sched, err := dealer.Schedule(p, run.bundles[0].Batch) // MatMul, Trunc, Sign, ...
	if err != nil {
		t.Fatal(err)
	}
	if run.bundles[0].Masked() {
		sched[0].FixedB = p.Nodes[0].Inputs[1] // the first MatMul's weight
	}
	const tr, sg = 1, 2
	truncs, signs := make([]dealer.TruncPair, n), make([]dealer.Comparison, n)
	for i, b := range run.bundles {
		src, err := b.Expand(p)
		if err != nil {
			t.Fatal(err)
		}
		for ri, req := range sched[:sg+1] {
			m, err := src.Next(req)
			if err != nil {
				t.Fatal(err)
			}
			switch ri {
			case tr:
				truncs[i] = m.Trunc()
			case sg:
				signs[i] = m.Comparison()
			}
		}
	}
	a := make([]uint64, len(signs[0].A))
	rho := make([]uint64, len(signs[0].Rho))
	for i := range n {
		combine(a, signs[i].A, false)
		combine(rho, signs[i].Rho, true)
	}
	rs, rm := truncs[n-1].Shift, truncs[n-1].MSB
	rhoA, arho := signs[n-1].RhoArith, signs[n-1].ARho
	out := run.outs[n-1].Data
	found := make(map[int]uint64)
	for k := range out {
		if rhoA[k]&1 == 0 {
			continue
		}
		inv := inverse(rhoA[k])
		cands := map[uint64]bool{}
		for mc := range uint64(2) {
			tl := -rs[k] + ((1-mc)*rm[k])<<(64-frac)
			for e := range uint64(2) {
				dv := out[k] - arho[k] // e = 1: out = a·rho + d·rho
				if e == 0 {
					dv = tl - arho[k] - out[k]
				}
				tt := dv*inv + a[k]
				b := (rho[k/64]>>(k%64))&1 ^ e
				if v := int64(tt); v > -1<<40 && v < 1<<40 && (v < 0) == (b == 1) {
					cands[tt] = true
				}
			}
		}
		if len(cands) == 1 {
			for tt := range cands {
				found[k] = tt
			}
		}
	}
	return found
}

// combine adds (or XORs) s into acc.
func combine(acc, s []uint64, xor bool) {
	for i, v := range s {
		if xor {
			acc[i] ^= v
		} else {
			acc[i] += v
		}
	}
}

// inverse is the inverse of an odd a modulo 2^64 (Newton's iteration).
func inverse(a uint64) uint64 {
	x := a
	for range 6 {
		x *= 2 - a*x
	}
	return x
}
