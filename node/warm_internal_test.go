package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node/pb"
)

// TestWarmRefused checks what holders refuse in a warm session: a dealer
// the manifest does not name, a warm request sent by a peer other than its
// dealer, and a mask set already opened against other shares (a second
// model with the same plan), which would reveal the difference of the two
// weight sets.
func TestWarmRefused(t *testing.T) {
	var logs syncBuffer
	s := newTestSwarm(t, 2, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, w := plan.Seed()
	ma, err := s.client.Publish(ctx, "a", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := s.client.Publish(ctx, "b", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	rogue := s.startPeer(t, "rogue", RoleDealer)
	user := s.startPeer(t, "user")
	for _, n := range []*Node{rogue, user, s.boot} {
		if err := waitLookup(ctx, n, "a", "b"); err != nil {
			t.Fatal(err)
		}
	}
	_, shareSets := sessionParties(ma.Holders)
	masksA, err := s.boot.masks.forDealer(ma, p, shareSets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.boot.warmWith(ctx, ma, ma.Holders, masksA); err != nil {
		t.Fatalf("the named dealer's warm: %v", err)
	}
	t.Run("a dealer the manifest does not name", func(t *testing.T) {
		_, err := rogue.warmModel(ctx, ma, ma.Holders)
		if !errors.Is(err, ErrUntrustedDealer) {
			t.Fatalf("the rogue's own check: err = %v, want ErrUntrustedDealer", err)
		}
		_, err = rogue.warmWith(ctx, ma, ma.Holders, masksA)
		if !errors.Is(err, ErrUntrustedDealer) || !strings.Contains(err.Error(), rogue.ID().String()) {
			t.Fatalf("err = %v, want ErrUntrustedDealer naming the rogue", err)
		}
	})
	t.Run("a warm request from a peer other than its dealer", func(t *testing.T) {
		sid, _ := newSessionID()
		req := &pb.InferRequest{Session: sid, Model: ma.ID, Version: ma.Version, Party: 0, Holders: peerBytes(ma.Holders), Dealer: []byte(s.boot.ID())}
		c, err := user.openSession(ctx, 0, ma.Holders[0], req)
		if err == nil {
			c.s.Reset()
			t.Fatal("a holder accepted a warm request from a peer other than the dealer")
		}
		if !errors.Is(err, errBadRequest) || !strings.Contains(err.Error(), "only its dealer") {
			t.Fatalf("err = %v, want a bad request", err)
		}
	})
	t.Run("a mask set opened against other shares", func(t *testing.T) {
		before := s.holders[0].MaskStats().Opened + s.holders[1].MaskStats().Opened
		if _, err := s.boot.warmWith(ctx, mb, mb.Holders, masksA); err == nil {
			t.Fatal("the holders opened mask set A against model b's shares")
		}
		if after := s.holders[0].MaskStats().Opened + s.holders[1].MaskStats().Opened; after != before {
			t.Fatalf("the holders opened %d mask sets", after-before)
		}
		if !strings.Contains(logs.String(), ErrMaskReuse.Error()) {
			t.Fatalf("no holder logged a mask reuse refusal:\n%s", logs.String())
		}
	})
}

// syncBuffer is a bytes.Buffer safe for the nodes' concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FuzzMaskBinding feeds the mask binding decoder another holder's bytes:
// it never panics, and what it accepts marshals back to the input.
func FuzzMaskBinding(f *testing.F) {
	f.Add(maskBinding{seed: [32]byte{1}, binding: [32]byte{2}}.marshal())
	f.Add([]byte{0})
	f.Add(make([]byte, maskBindingLen+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseMaskBinding(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.marshal(), b) {
			t.Fatalf("%x decodes to %+v, which marshals to %x", b, a, a.marshal())
		}
	})
}

// waitWarmed waits (bounded) until dealer d has warmed the models ids, so
// that no warm session runs while a test records what holders receive.
func waitWarmed(t testing.TB, ctx context.Context, d *Node, ids ...string) {
	t.Helper()
	for _, id := range ids {
		m, err := d.disc.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		k := warmKey(m, m.Holders)
		for i := 0; !d.masks.warmed.succeeded(k); i++ {
			if i == 300 || ctx.Err() != nil {
				t.Fatalf("dealer %s has not warmed %q", d.ID(), id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestAcceptWarmBundle checks what a holder takes as a warm session's
// delivery: its mask bundle and a one-sample bundle dealt with that mask
// set, for its party.
func TestAcceptWarmBundle(t *testing.T) {
	p := &plan.Plan{Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{-1, 2}}, Output: "y",
		Weights: []plan.Value{{Name: "W", Shape: []int{2, 1}}, {Name: "B", Shape: []int{1}}},
		Nodes:   []plan.Node{{Name: "fc", Op: plan.MatMul, Inputs: []string{"x", "W", "B"}, Output: "y"}}}
	masks, err := dealer.NewMasks(p, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := dealer.NewMasks(p, 2, nil)
	marshal := func(v interface{ Marshal() ([]byte, error) }) []byte {
		b, err := v.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	deal := func(batch int, m *dealer.Masks) []byte {
		bs, err := dealer.DealMasked(p, batch, fixed.Default(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return marshal(bs[0])
	}
	mb := marshal(masks.Bundles()[0])
	for _, tc := range []struct {
		name     string
		delivery *pb.BundleDelivery
		ok       bool
	}{
		{"mask bundle and one-sample bundle", &pb.BundleDelivery{MaskBundle: mb, Bundle: deal(1, masks)}, true},
		{"no mask bundle", &pb.BundleDelivery{Bundle: deal(1, masks)}, false},
		{"another party's mask bundle", &pb.BundleDelivery{MaskBundle: marshal(masks.Bundles()[1]), Bundle: deal(1, masks)}, false},
		{"no bundle", &pb.BundleDelivery{MaskBundle: mb}, false},
		{"a bundle of two samples", &pb.BundleDelivery{MaskBundle: mb, Bundle: deal(2, masks)}, false},
		{"a bundle of another mask set", &pb.BundleDelivery{MaskBundle: mb, Bundle: deal(1, other)}, false},
		{"garbage", &pb.BundleDelivery{MaskBundle: []byte("x"), Bundle: []byte("y")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := &holderSession{party: 0, holders: make([]peer.ID, 2), bundle: make(chan *sessionBundle, 1)}
			err := acceptWarmBundle(sess, tc.delivery)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errBadRequest)) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestWarmBook checks the dealer's record of warms: due at first, not
// after a success until warmRecheck, after a failure by a doubling
// backoff, and after a refusal only at warmRecheck.
func TestWarmBook(t *testing.T) {
	b := warmBook{m: map[string]warmEntry{}}
	t0 := time.Unix(1000, 0)
	if !b.due("k", t0) {
		t.Fatal("a new warm is not due")
	}
	for i, want := range []time.Duration{warmBackoffMin, 2 * warmBackoffMin, 4 * warmBackoffMin} {
		if got := b.done("k", t0, errors.New("holder unreachable")); got != want {
			t.Fatalf("failure %d: backoff %v, want %v", i, got, want)
		}
	}
	if b.due("k", t0) || !b.due("k", t0.Add(4*warmBackoffMin)) || b.succeeded("k") {
		t.Fatal("a failed warm's next try is wrong")
	}
	if got := b.done("k", t0, badRequest("frame too large")); got != warmRecheck {
		t.Fatalf("refusal: backoff %v, want %v", got, warmRecheck)
	}
	b.done("k", t0, nil)
	if !b.succeeded("k") || b.due("k", t0.Add(warmRecheck-time.Second)) || !b.due("k", t0.Add(warmRecheck)) {
		t.Fatal("a warm that worked is not rechecked after warmRecheck")
	}
	if got := b.done("k", t0, errors.New("again")); got != warmBackoffMin {
		t.Fatalf("a failure after a success: backoff %v, want %v", got, warmBackoffMin)
	}
}

// TestMaskSeedLegacyRecord checks that a seed record of the earlier format
// (the holder's own binding as text) counts as the same binding, and is
// rewritten, while other shares are still refused.
func TestMaskSeedLegacyRecord(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "holder"), true, func(c *Config) { c.Roles = []string{RoleHolder} })
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mb := &dealer.MaskBundle{Party: 1, Parties: 2, Seed: [32]byte{7}}
	sess := &holderSession{party: 1, modelKey: "owner/m/1/plan/h0,h1/checksum-a"}
	h := seedHash(mb.Seed)
	key := ds.NewKey(maskSeedPrefix + hex.EncodeToString(h[:]))
	if err := n.store.ds.Put(ctx, key, []byte(sess.modelKey+"/1")); err != nil {
		t.Fatal(err)
	}
	if err := n.bindMaskSeed(ctx, mb, sess); err != nil {
		t.Fatalf("the same shares in the earlier format: %v", err)
	}
	if rec, err := n.store.ds.Get(ctx, key); err != nil || len(rec) != 32 {
		t.Fatalf("record %q, %v: not rewritten", rec, err)
	}
	other := &holderSession{party: 1, modelKey: "owner/m/1/plan/h0,h1/checksum-b"}
	if err := n.bindMaskSeed(ctx, mb, other); !errors.Is(err, ErrMaskReuse) {
		t.Fatalf("other shares: err = %v, want ErrMaskReuse", err)
	}
}
