package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// transcript runs one session and returns what party `watch` receives in
// the online phase: the message headers, and the payload bytes, each as the
// concatenation of the streams from party 0, 1, ... in turn.
func transcript(t *testing.T, p *plan.Plan, w plan.Weights, x *tensor.Dense[float64], n, watch int, opts ...Option) (headers, payload []byte) {
	t.Helper()
	nw := transport.NewNetwork(n)
	var mu sync.Mutex
	hs, ps := make([][]byte, n), make([][]byte, n)
	nw.SetIntercept(func(from, to int, m []byte) ([]byte, bool) {
		if to == watch {
			mu.Lock()
			hs[from] = append(hs[from], m[:headerSize]...)
			ps[from] = append(ps[from], m[headerSize:]...)
			mu.Unlock()
		}
		return m, true
	})
	if _, _, err := RunLocal(context.Background(), p, w, x, n, append(opts, WithNetwork(nw))...); err != nil {
		t.Fatal(err)
	}
	return bytes.Join(hs, nil), bytes.Join(ps, nil)
}

// chiUniform is the chi-square statistic of a byte histogram against the
// uniform distribution (255 degrees of freedom).
func chiUniform(h *[256]float64) float64 {
	var total float64
	for _, c := range h {
		total += c
	}
	e := total / 256
	var chi float64
	for _, c := range h {
		chi += (c - e) * (c - e) / e
	}
	return chi
}

// chiHomogeneity is the two-sample chi-square statistic of two byte
// histograms (same distribution?), 255 degrees of freedom.
func chiHomogeneity(a, b *[256]float64) float64 {
	var ta, tb float64
	for i := range a {
		ta += a[i]
		tb += b[i]
	}
	var chi float64
	for i := range a {
		tot := a[i] + b[i]
		if tot == 0 {
			continue
		}
		ea, eb := tot*ta/(ta+tb), tot*tb/(ta+tb)
		chi += (a[i]-ea)*(a[i]-ea)/ea + (b[i]-eb)*(b[i]-eb)/eb
	}
	return chi
}

// chiLimit: for 255 degrees of freedom the statistic has mean 255 and
// standard deviation sqrt(510) ~ 22.6; 400 is 6.4 standard deviations, a
// false alarm rate below 1e-8.
const chiLimit = 400

// TestPrivacyOpenedValuesUniform runs the same plan on two very different
// secret inputs many times and checks what one party receives online:
//   - the message sizes and headers are identical (the transcript's shape
//     does not depend on the input);
//   - the payload bytes are uniform for each input (chi-square), and
//     distributed alike for both inputs (two-sample chi-square), overall
//     and for the top byte of every word position separately, which would
//     catch a single unmasked value;
//   - and, as a control that the statistics have power, the same tests
//     reject the unmasked fixed-point encoding of the input.
//
// It runs with and without weight masks (with them, the transcript also
// holds the one-time opening of F = W - B).
func TestPrivacyOpenedValuesUniform(t *testing.T) {
	mp, mw, _ := smallMLP()
	cp, cw := smallCNN(rand.New(rand.NewPCG(5, 5)))
	t.Run("mlp triples", func(t *testing.T) { testPrivacy(t, mp, mw, 3, []int{2, 4}) })
	t.Run("mlp weight masks", func(t *testing.T) { testPrivacy(t, mp, mw, 3, []int{2, 4}, WithWeightMasks()) })
	t.Run("cnn weight masks", func(t *testing.T) { testPrivacy(t, cp, cw, 3, []int{1, 1, 8, 8}, WithWeightMasks()) })
	t.Run("cnn two holders (DCF gates)", func(t *testing.T) {
		testPrivacy(t, cp, cw, 2, []int{1, 1, 8, 8}, WithWeightMasks())
	})
}

// testPrivacy checks the byte statistics of what holder 1 of n receives.
func testPrivacy(t *testing.T, p *plan.Plan, w plan.Weights, n int, shape []int, opts ...Option) {
	runs := 150
	if tensor.Size(shape) > 32 {
		runs = 60 // a larger transcript per run
	}
	watch := 1
	xa := tensor.New[float64](shape...)
	xb := tensor.New[float64](shape...)
	for i := range xa.Data {
		xa.Data[i], xb.Data[i] = 3.5, -2.25+float64(i%32)/8
	}
	var ha, hb [256]float64
	var headA []byte
	var words int
	var topA, topB [][256]float64 // per word position: histogram of its top byte
	for run := range runs {
		hdrA, pa := transcript(t, p, w, xa, n, watch, opts...)
		hdrB, pb := transcript(t, p, w, xb, n, watch, opts...)
		if !bytes.Equal(hdrA, hdrB) || len(pa) != len(pb) {
			t.Fatalf("run %d: transcript shape differs between inputs", run)
		}
		if headA == nil {
			headA = hdrA
			words = len(pa) / 8
			topA, topB = make([][256]float64, words), make([][256]float64, words)
		} else if !bytes.Equal(headA, hdrA) {
			t.Fatalf("run %d: headers differ between runs", run)
		}
		for i := range pa {
			ha[pa[i]]++
			hb[pb[i]]++
		}
		for w := range words {
			// word w's most significant byte (little-endian: the 8th)
			topA[w][pa[8*w+7]]++
			topB[w][pb[8*w+7]]++
		}
	}
	if c := chiUniform(&ha); c > chiLimit {
		t.Errorf("input A: payload bytes not uniform: chi2 = %.0f", c)
	}
	if c := chiUniform(&hb); c > chiLimit {
		t.Errorf("input B: payload bytes not uniform: chi2 = %.0f", c)
	}
	if c := chiHomogeneity(&ha, &hb); c > chiLimit {
		t.Errorf("payload byte distributions differ between inputs: chi2 = %.0f", c)
	}
	// per position: runs samples over 256 bins is sparse, so fold the top
	// byte into 16 bins (its high nibble); 15 degrees of freedom. The limit
	// 70 has p ~ 3e-9 per position (below 1e-4 over ten thousand positions),
	// while a position holding different constants for the two inputs
	// scores 2*runs >= 120.
	worst := 0.0
	for w := range words {
		var a, b [256]float64
		for v := range 256 {
			a[v>>4] += topA[w][v]
			b[v>>4] += topB[w][v]
		}
		worst = math.Max(worst, chiHomogeneity(&a, &b))
	}
	if worst > 70 {
		t.Errorf("some word position is distributed differently for the two inputs: chi2(15) = %.1f", worst)
	}
	t.Logf("%d runs per input, %d messages and %d payload bytes per run; chi2 uniform %.0f / %.0f, homogeneity %.0f, worst position %.1f",
		runs, len(headA)/headerSize, 8*words, chiUniform(&ha), chiUniform(&hb), chiHomogeneity(&ha, &hb), worst)

	// control: the unmasked input encodings fail the same tests
	enc := fixed.Default()
	var ca, cb [256]float64
	r := rand.New(rand.NewPCG(1, 2))
	for range runs {
		for _, x := range []*tensor.Dense[float64]{xa, xb} {
			u, err := enc.Encode(x)
			if err != nil {
				t.Fatal(err)
			}
			h := &ca
			if x == xb {
				h = &cb
			}
			var buf [8]byte
			for _, v := range u.Data {
				binary.LittleEndian.PutUint64(buf[:], v+uint64(r.IntN(4))) // a little noise does not hide it
				for _, by := range buf {
					h[by]++
				}
			}
		}
	}
	if chiUniform(&ca) < chiLimit || chiHomogeneity(&ca, &cb) < chiLimit {
		t.Fatal("control: the statistics do not detect unmasked values")
	}
}
