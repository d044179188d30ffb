package web_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/grid/web"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// holderRecord is everything one holder received (node's Testing.Record):
// payloads by kind ("infer": its input share, "dealer": its bundle,
// "mpc": frames from the other holders).
type holderRecord struct {
	mu   sync.Mutex
	data map[string][][]byte
}

func (r *holderRecord) record(kind string, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		r.data = map[string][][]byte{}
	}
	r.data[kind] = append(r.data[kind], bytes.Clone(b))
}

func (r *holderRecord) take() map[string][][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.data
	r.data = nil
	return d
}

// plaintexts are the 8-byte little-endian words a leak would show: the
// fixed-point encodings of each value and of its neighbours within two
// units in the last place (a truncation's error), and of its float64 bits.
func plaintexts(values ...float64) map[[8]byte]string {
	out := map[[8]byte]string{}
	enc := fixed.Default()
	for _, v := range values {
		u, err := enc.EncodeValue(v)
		if err != nil {
			panic(err)
		}
		for d := -2; d <= 2; d++ {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], u+uint64(d))
			out[w] = fmt.Sprintf("encoding of %g %+d", v, d)
		}
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], math.Float64bits(v))
		out[w] = fmt.Sprintf("float64 bits of %g", v)
	}
	return out
}

// leaks lists where one of the words of secret appears in b, at any byte
// offset.
func leaks(b []byte, secret map[[8]byte]string) []string {
	var found []string
	var w [8]byte
	for i := 0; i+8 <= len(b); i++ {
		copy(w[:], b[i:i+8])
		if what, ok := secret[w]; ok {
			found = append(found, fmt.Sprintf("%s at byte %d", what, i))
		}
	}
	return found
}

// TestBrowserHolderView records everything each holder receives while the
// page, in headless Chromium, queries the seed model: the holders get an
// input share each (16 bytes for [x1, x2]), a dealer bundle and the other
// holders' frames, and none of it holds the input or the output in the
// clear (as a fixed-point encoding or as float64 bits); the same input
// queried twice gives each holder a different share.
func TestBrowserHolderView(t *testing.T) {
	d := startDriver(t)
	ctx := testContext(t, 3*time.Minute)
	recs := make([]*holderRecord, 3)
	for i := range recs {
		recs[i] = &holderRecord{}
	}
	c, err := nodetest.MakeCluster(ctx, filepath.Join(t.TempDir()), nodetest.Config{
		Holders: 3, Clients: 1,
		Edit: func(kind string, i int, nc *node.Config) {
			switch kind {
			case nodetest.Dealer: // everyone's bootstrap peer serves the page
				nc.APIAddr, nc.Web = "127.0.0.1:0", web.Handler()
			case nodetest.Holder:
				nc.Testing.Record = recs[i].record
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close cluster: %v", err)
		}
	})
	p, w := plan.Seed()
	if _, err := c.Clients[0].Publish(ctx, "seed", p, w, node.PublishOptions{Holders: 3}); err != nil {
		t.Fatal(err)
	}
	// The dealer opens its weight masks with the holders right after the
	// publish (a warm session, no input): wait for it, bounded, so that
	// its messages are not taken for the first query's.
	for i := 0; c.Dealer.MaskStats().Warmed < 1; i++ {
		if i == 300 {
			t.Fatal("the dealer never warmed the model's masks")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range recs {
		r.take() // the upload and the warm session
	}
	d.must(map[string]any{"do": "open", "url": "http://" + c.Dealer.APIAddr() + "/"}, nil)

	x := []float64{123.456, -789.25}
	want := plan.SeedAnswer(x[0], x[1])
	secret := plaintexts(x[0], x[1], want)
	// A control: the search finds a plaintext input where there is one.
	ctl, _ := fixed.Default().EncodeValue(x[0])
	if got := leaks(binary.LittleEndian.AppendUint64([]byte{1, 2, 3}, ctl), secret); len(got) != 1 {
		t.Fatalf("control: the leak search found %v in a plaintext input", got)
	}

	var shares [2][][]byte // [query][holder] input share
	for q := range 2 {
		res := d.api("seed", x, 1)[0]
		if len(res.Output) != 1 || math.Abs(res.Output[0]-want) > 1e-3 {
			t.Fatalf("query %d: the browser got %v, want %g", q, res.Output, want)
		}
		for h, r := range recs {
			got := r.take()
			if len(got["infer"]) != 1 || len(got["infer"][0]) != 16 {
				t.Fatalf("query %d: holder %d received input shares %d x %v bytes, want one of 16", q, h, len(got["infer"]), lens(got["infer"]))
			}
			if len(got["dealer"]) != 1 || len(got["mpc"]) == 0 {
				t.Fatalf("query %d: holder %d received %d bundles and %d mpc frames", q, h, len(got["dealer"]), len(got["mpc"]))
			}
			shares[q] = append(shares[q], got["infer"][0])
			n := 0
			for kind, bs := range got {
				for i, b := range bs {
					n += len(b)
					if l := leaks(b, secret); len(l) > 0 {
						t.Errorf("query %d: holder %d's %s payload %d holds %v", q, h, kind, i, l)
					}
				}
			}
			t.Logf("query %d: holder %d received %d payloads, %d bytes: %d-byte input share %x, no plaintext", q, h, len(got["infer"])+len(got["dealer"])+len(got["mpc"]), n, len(got["infer"][0]), got["infer"][0])
		}
	}
	for h := range recs {
		if bytes.Equal(shares[0][h], shares[1][h]) {
			t.Errorf("holder %d received the same share for two queries of the same input: %x", h, shares[0][h])
		}
	}
}

func lens(bs [][]byte) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = len(b)
	}
	return out
}
