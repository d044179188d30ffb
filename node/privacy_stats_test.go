package node

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// chi2Limit is the rejection threshold of the χ² statistics below (255
// degrees of freedom): P(χ²₂₅₅ > 360) ≈ 1e-5, so a correct protocol fails
// a test by chance about once in 10⁵ runs per statistic.
const chi2Limit = 360

// byteHist counts the byte values of words.
func byteHist(words []uint64) (h [256]float64, n float64) {
	for _, w := range words {
		for k := range 8 {
			h[byte(w>>(8*k))]++
		}
	}
	return h, float64(8 * len(words))
}

// chi2Uniform is Pearson's χ² of a byte histogram against the uniform law.
func chi2Uniform(h [256]float64, n float64) float64 {
	e := n / 256
	var x float64
	for _, o := range h {
		x += (o - e) * (o - e) / e
	}
	return x
}

// chi2TwoSample is the χ² homogeneity statistic of two byte histograms
// (255 degrees of freedom): are both samples drawn from one law?
func chi2TwoSample(a [256]float64, na float64, b [256]float64, nb float64) float64 {
	ka, kb := math.Sqrt(nb/na), math.Sqrt(na/nb)
	var x float64
	for i := range a {
		if a[i]+b[i] > 0 {
			d := ka*a[i] - kb*b[i]
			x += d * d / (a[i] + b[i])
		}
	}
	return x
}

// varyingWords keeps, from sessions' word lists of equal length, the words
// whose value changes between sessions (fresh randomness); constant words
// are structure (frame headers, shapes) and are returned apart.
func varyingWords(sessions [][]uint64) (varying []uint64, constant []uint64) {
	for j := range sessions[0] {
		same := true
		for _, s := range sessions[1:] {
			if s[j] != sessions[0][j] {
				same = false
				break
			}
		}
		if same {
			constant = append(constant, sessions[0][j])
			continue
		}
		for _, s := range sessions {
			varying = append(varying, s[j])
		}
	}
	return varying, constant
}

// mlpModel is an 8-16-4 MLP with a ReLU: two models of one plan, with
// different weights drawn from seed.
func mlpModel(seed uint64) (*plan.Plan, plan.Weights) {
	p := &plan.Plan{
		Version: plan.Version,
		Input:   plan.Value{Name: "x", Shape: []int{8}},
		Output:  "y",
		Weights: []plan.Value{{Name: "W1", Shape: []int{8, 16}}, {Name: "b1", Shape: []int{16}},
			{Name: "W2", Shape: []int{16, 4}}, {Name: "b2", Shape: []int{4}}},
		Nodes: []plan.Node{
			{Name: "fc1", Op: plan.MatMul, Inputs: []string{"x", "W1", "b1"}, Output: "h"},
			{Name: "relu", Op: plan.Relu, Inputs: []string{"h"}, Output: "r"},
			{Name: "fc2", Op: plan.MatMul, Inputs: []string{"r", "W2", "b2"}, Output: "y"},
		},
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	w := plan.Weights{}
	for _, v := range p.Weights {
		t := tensor.New[float64](v.Shape...)
		for i := range t.Data {
			t.Data[i] = math.Round((rng.Float64()*4-2)*64) / 64
		}
		w[v.Name] = t
	}
	return p, w
}

// TestHolderViewIndistinguishable records what one holder receives over
// real libp2p sessions (its input share and every MPC frame; the bundle
// holds dealer randomness only) for two models of one shape (an MLP with a
// ReLU, whose sign test opens most values) and two very different inputs,
// 48 sessions each, and tests that the four views are statistically
// indistinguishable: the bytes of the words that vary between sessions
// are uniform (χ², 255 df) and identically distributed across every pair
// of secrets (two-sample χ²), the words that do not vary are the same for
// every secret, and no fixed-point encoding of a weight, input or output
// value appears. A control shows the same statistics reject a view that
// leaks the plaintext input.
func TestHolderViewIndistinguishable(t *testing.T) {
	if testing.Short() {
		t.Skip("192 sessions")
	}
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	var rec viewRecorder
	type model struct {
		id string
		p  *plan.Plan
		w  plan.Weights
	}
	var models []model
	for i, seed := range []uint64{7, 8} {
		p, w := mlpModel(seed)
		id := fmt.Sprintf("mlp-%c", 'a'+i)
		if _, err := s.client.Publish(ctx, id, p, w, PublishOptions{Holders: 2}); err != nil {
			t.Fatal(err)
		}
		models = append(models, model{id, p, w})
	}
	waitWarmed(t, ctx, s.boot, "mlp-a", "mlp-b") // no warm session while recording
	inputs := [][]float64{
		{1, 2, 3, 4, 5, 6, 7, 8},
		{-30, 0.25, 17, -0.5, 0, 12, -9, 3.75},
	}
	// Record party 0 of the model queried.
	recordParty0 := func(id string) {
		m, err := s.client.disc.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range s.holders {
			h.cfg.Testing.Record = nil
			if h.ID() == m.Holders[0] {
				h.cfg.Testing.Record = rec.record
			}
		}
	}
	enc := fixed.Default()
	var secrets [][]byte
	const R = 48
	type view struct {
		name     string
		sessions [][]uint64
		x        []float64
	}
	var views []view
	for _, m := range models {
		recordParty0(m.id)
		// The first query opens the weight masks: not part of the steady view.
		if _, err := s.client.Infer(ctx, m.id, vec(inputs[0]...), InferOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, wt := range m.w {
			secrets = append(secrets, secretPatterns(nonZero(wt.Data)...)...)
		}
		for _, x := range inputs {
			want, err := plan.EvalPlain(m.p, m.w, &tensor.Dense[float64]{Shape: []int{8}, Data: x})
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, secretPatterns(nonZero(x)...)...)
			secrets = append(secrets, secretPatterns(nonZero(want.Data)...)...)
			v := view{name: fmt.Sprintf("%s %v", m.id, x), x: x}
			for range R {
				rec.start()
				res, err := s.client.Infer(ctx, m.id, vec(x...), InferOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range want.Data {
					if math.Abs(res.Output[i]-want.Data[i]) > 0.01 {
						t.Fatalf("%s: output %v, want %v", v.name, res.Output, want.Data)
					}
				}
				cur := rec.stop()
				for _, k := range []string{"infer", "mpc"} {
					for _, msg := range cur[k] {
						for _, pat := range secrets {
							if bytes.Contains(msg, pat) {
								t.Fatalf("%s: a %s message holds the plaintext pattern %x", v.name, k, pat)
							}
						}
					}
				}
				cur["dealer"] = nil
				v.sessions = append(v.sessions, cur.words())
			}
			for _, ws := range v.sessions {
				if len(ws) != len(v.sessions[0]) {
					t.Fatalf("%s: views of %d and %d words", v.name, len(ws), len(v.sessions[0]))
				}
			}
			views = append(views, v)
		}
	}
	for _, h := range s.holders {
		h.cfg.Testing.Record = nil
	}

	type sample struct {
		h [256]float64
		n float64
	}
	samples := make([]sample, len(views))
	var constant0 []uint64
	for i, v := range views {
		if len(v.sessions[0]) != len(views[0].sessions[0]) {
			t.Fatalf("%s: %d words per session, %s: %d", v.name, len(v.sessions[0]), views[0].name, len(views[0].sessions[0]))
		}
		varying, constant := varyingWords(v.sessions)
		if i == 0 {
			constant0 = constant
			t.Logf("holder view per session: %d words, %d of them varying", len(v.sessions[0]), len(varying)/R)
		} else if fmt.Sprint(constant) != fmt.Sprint(constant0) {
			t.Fatalf("%s: the constant words of the view depend on the secrets", v.name)
		}
		h, n := byteHist(varying)
		samples[i] = sample{h, n}
		if x := chi2Uniform(h, n); x > chi2Limit {
			t.Fatalf("%s: bytes of the varying words not uniform: χ² = %.0f over %.0f bytes", v.name, x, n)
		} else {
			t.Logf("%s: uniform, χ² = %.0f (255 df) over %.0f bytes", v.name, x, n)
		}
	}
	for i := range views {
		for j := i + 1; j < len(views); j++ {
			x := chi2TwoSample(samples[i].h, samples[i].n, samples[j].h, samples[j].n)
			if x > chi2Limit {
				t.Fatalf("%s vs %s: distinguishable, two-sample χ² = %.0f", views[i].name, views[j].name, x)
			}
			t.Logf("%s vs %s: two-sample χ² = %.0f", views[i].name, views[j].name, x)
		}
	}

	// Control: the same view plus the plaintext encoding of the input once
	// per session, as a protocol that forgot to mask its input would leak.
	leak := func(v view) sample {
		var ws []uint64
		varying, _ := varyingWords(v.sessions)
		ws = append(ws, varying...)
		for range R {
			for _, x := range v.x {
				u, err := enc.EncodeValue(x)
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, u)
			}
		}
		h, n := byteHist(ws)
		return sample{h, n}
	}
	l0, l1 := leak(views[0]), leak(views[1])
	if x := chi2Uniform(l0.h, l0.n); x <= chi2Limit {
		t.Fatalf("control: a leaking view passes the uniformity test (χ² = %.0f)", x)
	}
	if x := chi2TwoSample(l0.h, l0.n, l1.h, l1.n); x <= chi2Limit {
		t.Fatalf("control: leaking views of two inputs are not told apart (χ² = %.0f)", x)
	} else {
		t.Logf("control: views leaking the input are told apart, χ² = %.0f", x)
	}
}

// nonZero drops zeros: the encoding of 0 is the all-zero word, which frame
// headers and padding contain anyway.
func nonZero(v []float64) []float64 {
	var out []float64
	for _, x := range v {
		if x != 0 {
			out = append(out, x)
		}
	}
	return out
}
