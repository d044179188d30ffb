package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// holderView is everything one holder received during one session, by kind.
type holderView map[string][][]byte

// viewRecorder collects what one holder receives between start and stop;
// its record method is the holder's recordHook (called from its stream
// goroutines, so it locks).
type viewRecorder struct {
	mu  sync.Mutex
	cur holderView
}

func (r *viewRecorder) record(kind string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur[kind] = append(r.cur[kind], bytes.Clone(data))
	}
}

// start begins a new view; what arrives before it is dropped.
func (r *viewRecorder) start() {
	r.mu.Lock()
	r.cur = holderView{}
	r.mu.Unlock()
}

// stop ends the view and returns it; what arrives after it is dropped.
func (r *viewRecorder) stop() holderView {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.cur
	r.cur = nil
	return v
}

func (v holderView) words() []uint64 {
	var out []uint64
	for _, k := range []string{"infer", "dealer", "mpc"} {
		for _, m := range v[k] {
			for i := 0; i+8 <= len(m); i += 8 {
				out = append(out, binary.LittleEndian.Uint64(m[i:]))
			}
		}
	}
	return out
}

func (v holderView) sizes() string {
	var s string
	for _, k := range []string{"infer", "dealer", "mpc"} {
		for _, m := range v[k] {
			s += fmt.Sprintf("%s:%d ", k, len(m))
		}
	}
	return s
}

// secretPatterns are the fixed-point encodings (both signs, little-endian
// words: how the engine carries values) of secret values that must never
// appear in a holder's view.
func secretPatterns(vals ...float64) [][]byte {
	enc := fixed.Default()
	var out [][]byte
	for _, v := range vals {
		for _, x := range []float64{v, -v} {
			if u, err := enc.EncodeValue(x); err == nil {
				out = append(out, binary.LittleEndian.AppendUint64(nil, u))
			}
		}
	}
	return out
}

// TestHolderViewPrivacy records everything holder 0 of a 2-holder model
// receives (its weight shares, input shares, bundle and every MPC frame)
// over real sessions, for two secret inputs and two models of the same
// shape, and checks that (1) no plaintext weight, input or output value
// (fixed-point) appears in its shares, input shares or MPC frames, (2) the view's structure (message kinds and sizes) is the
// same whatever the secrets, and (3) the words that vary between sessions
// are balanced the same way for every secret (top-bit frequency within
// 4 sigma of 1/2) while the others do not depend on the input: the view is
// independent of the secrets up to the public shapes and the model's
// identity.
func TestHolderViewPrivacy(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var rec viewRecorder
	for _, h := range s.holders {
		h.cfg.Testing.Record = rec.record
	}
	p, wA := plan.Seed()
	wB := plan.Weights{
		"W": &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{-7, 0.5}},
		"B": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{-3}},
	}
	rec.start()
	_, err := s.client.Publish(ctx, "model-a", p, wA, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Publish(ctx, "model-b", p, wB, PublishOptions{Holders: 2}); err != nil {
		t.Fatal(err)
	}
	waitWarmed(t, ctx, s.boot, "model-a", "model-b") // no warm session while recording
	uploads := rec.stop()["shares"]
	if len(uploads) != 4 {
		t.Fatalf("recorded %d share uploads, want 4", len(uploads))
	}
	secrets := secretPatterns(2, 4, 1000, -7, 0.5, -3, 5, 3, -100, 42, 1022, -38, 680, 21)
	for i, u := range uploads {
		for _, pat := range secrets {
			if bytes.Contains(u, pat) {
				t.Fatalf("share upload %d contains a plaintext weight pattern %x", i, pat)
			}
		}
	}

	// The recorded holder is party 0 of each model (holders are the same two
	// peers; the party order may differ between the models).
	recordOnly := func(id string) {
		m, err := s.client.disc.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range s.holders {
			if h.ID() == m.Holders[0] {
				h.cfg.Testing.Record = rec.record
			} else {
				h.cfg.Testing.Record = nil
			}
		}
	}
	const R = 12
	type run struct {
		model string
		x     []float64
		want  float64
	}
	runs := []run{
		{"model-a", []float64{5, 3}, 1022},
		{"model-a", []float64{-100, 42}, 1000 - 200 + 168},
		{"model-b", []float64{5, 3}, -35 + 1.5 - 3},
		{"model-b", []float64{-100, 42}, 700 + 21 - 3},
	}
	// The first query of a model with a dealer opens the weight masks
	// (F = W - B, once per model and dealer): record it apart, check it for
	// plaintext only, and compare the steady-state queries.
	var setup []holderView
	for _, id := range []string{"model-a", "model-b"} {
		recordOnly(id)
		rec.start()
		if _, err := s.client.Infer(ctx, id, vec(1, 1), InferOptions{}); err != nil {
			t.Fatal(err)
		}
		setup = append(setup, rec.stop())
	}
	views := make([][]holderView, len(runs))
	for ri, r := range runs {
		recordOnly(r.model)
		for range R {
			rec.start()
			res, err := s.client.Infer(ctx, r.model, vec(r.x...), InferOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(res.Output[0]-r.want) > 0.01 {
				t.Fatalf("%s(%v) = %v, want %v", r.model, r.x, res.Output, r.want)
			}
			views[ri] = append(views[ri], rec.stop())
		}
	}

	// (1) No plaintext secret in any input share or MPC frame (the
	// dealer's bundle is checked by (2) and (3): it is dealt before the
	// secrets are known).
	for ri, vs := range append(views, setup) {
		for _, v := range vs {
			for _, k := range []string{"infer", "mpc"} {
				ms := v[k]
				for _, m := range ms {
					for _, pat := range secrets {
						if bytes.Contains(m, pat) {
							t.Fatalf("run %d: a %s message contains the plaintext pattern %x", ri, k, pat)
						}
					}
				}
			}
		}
	}
	// (2) Same structure for every secret.
	shape := views[0][0].sizes()
	for ri, vs := range views {
		for _, v := range vs {
			if v.sizes() != shape {
				t.Fatalf("run %d: view structure %q differs from %q", ri, v.sizes(), shape)
			}
		}
	}
	t.Logf("holder view per session: %s", shape)
	// (3) Words that change from session to session (fresh randomness)
	// must be balanced alike for every secret; words constant over a run's
	// sessions are structure (headers, shapes, the model's mask-set ID) and
	// must not depend on the input: equal across the two inputs of a model.
	words := make([][][]uint64, len(views))
	for ri, vs := range views {
		for _, v := range vs {
			words[ri] = append(words[ri], v.words())
		}
	}
	constant := func(ri, j int) bool {
		for _, w := range words[ri] {
			if w[j] != words[ri][0][j] {
				return false
			}
		}
		return true
	}
	for ri := range views {
		ones, total := 0, 0
		for j := range words[ri][0] {
			if constant(ri, j) {
				if other := ri ^ 1; constant(other, j) && words[other][0][j] != words[ri][0][j] {
					t.Fatalf("word %d is constant per session but differs between inputs %v and %v of %s", j, runs[ri].x, runs[other].x, runs[ri].model)
				}
				continue
			}
			for _, w := range words[ri] {
				total++
				ones += int(w[j] >> 63)
			}
		}
		if total == 0 {
			t.Fatal("no varying words recorded")
		}
		mean, sigma := float64(ones)/float64(total), 0.5/math.Sqrt(float64(total))
		if math.Abs(mean-0.5) > 4*sigma {
			t.Fatalf("run %d (%s %v): top bit set in %.3f of %d varying words, want 0.5 ± %.3f", ri, runs[ri].model, runs[ri].x, mean, total, 4*sigma)
		}
	}
}
