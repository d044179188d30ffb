package node

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/attack"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// startPeer starts one more node of the test swarm: a client-mode peer
// (roles nil) or a daemon with the given roles.
func (s *testSwarm) startPeer(t testing.TB, name string, roles ...string) *Node {
	t.Helper()
	n := startNode(t, filepath.Join(s.dir, name), true, func(c *Config) {
		c.Bootstrap = []string{s.bootAddr()}
		c.Roles = roles
		if len(roles) == 0 {
			c.Client, c.Listen = true, nil
		}
	})
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.disc.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// selfDealtSession is a malicious client's session: it skips every check
// Infer makes, names itself as the dealer, delivers the bundles it made
// (tampered or not) to the holders, and reconstructs the output. It is the
// attack the holders must refuse for a client that is not the owner.
func selfDealtSession(ctx context.Context, n *Node, m *discovery.Manifest, x *tensor.Dense[float64], bundles []*dealer.Bundle) (*tensor.Dense[float64], error) {
	enc := fixed.Default()
	ex, err := enc.Encode(x)
	if err != nil {
		return nil, err
	}
	shares, err := share.Split(ex, len(m.Holders), crand.Reader)
	if err != nil {
		return nil, err
	}
	sid, err := newSessionID()
	if err != nil {
		return nil, err
	}
	ids := make([][]byte, len(m.Holders))
	for i, h := range m.Holders {
		ids[i] = []byte(h)
	}
	var calls []*holderCall
	defer func() {
		for _, c := range calls {
			c.s.Reset()
		}
	}()
	for i, h := range m.Holders {
		req := &pb.InferRequest{Session: sid, Model: m.ID, Version: m.Version, Party: uint32(i), Holders: ids,
			Dealer: []byte(n.ID()), Batch: uint32(x.Shape[0]), Input: encodeWords("input", shares[i])}
		c, err := n.openSession(ctx, i, h, req)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	for i, h := range m.Holders {
		raw, err := bundles[i].Marshal()
		if err != nil {
			return nil, err
		}
		if err := n.deliverBundle(ctx, h, &pb.BundleDelivery{Session: sid, Party: uint32(i), PlanHash: m.PlanHash, Bundle: raw}); err != nil {
			return nil, fmt.Errorf("deliver bundle to holder %d: %w", i, err)
		}
	}
	outs := make([]*tensor.Dense[uint64], len(calls))
	for i, c := range calls {
		var r pb.InferResult
		if err := c.fr.readMsg(&r, maxTensorFrame); err != nil {
			return nil, fmt.Errorf("holder %d result: %w", i, err)
		}
		if err := errorFromStatus(r.Status); err != nil {
			return nil, fmt.Errorf("holder %d: %w", i, err)
		}
		if outs[i], err = decodeWords(r.Output); err != nil {
			return nil, err
		}
	}
	out, err := share.Reconstruct(outs)
	if err != nil {
		return nil, err
	}
	return enc.Decode(out), nil
}

// TestSelfDealingExtractionRefused carries out the review's extraction
// attack over real hosts: a client that is not the owner deals its own
// session with tampered material (mpcproto/attack: chosen offsets on the
// hidden pre-activations) to read every weight of a 4-6-2 MLP from one
// batch. The client API refuses to deal for it, every holder refuses the
// hand-made session (ErrUntrustedDealer), and the same batch through the
// owner's dealer yields weights nowhere near the real ones. The attack's
// own tests (mpcproto/attack) show it recovers the weights when holders
// accept the client as dealer.
func TestSelfDealingExtractionRefused(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, w := attack.NewMLP(rand.New(rand.NewPCG(7, 11)), 4, 6, 2)
	m, err := s.client.Publish(ctx, "victim", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Dealers, []peer.ID{s.boot.ID()}) {
		t.Fatalf("manifest dealers %v, want the advertised dealer %s", m.Dealers, s.boot.ID())
	}
	mallory := s.startPeer(t, "mallory")
	for _, n := range append([]*Node{mallory}, s.holders...) {
		if err := waitLookup(ctx, n, "victim"); err != nil {
			t.Fatal(err)
		}
	}
	atk, err := attack.SelfDeal(p, 2)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the client API refuses to deal for a non-owner", func(t *testing.T) {
		_, err := mallory.Infer(ctx, "victim", atk.Input, InferOptions{Dealer: DealerSelf})
		if !errors.Is(err, ErrUntrustedDealer) || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "only the owner") {
			t.Fatalf("err = %v, want ErrBadInput and ErrUntrustedDealer", err)
		}
	})
	t.Run("holders refuse the hand-made self-dealt session", func(t *testing.T) {
		out, err := selfDealtSession(ctx, mallory, m, atk.Input, atk.Bundles)
		if err == nil {
			rec, _ := atk.Recover(out)
			e, _, _ := attack.MaxAbsError(rec, w)
			t.Fatalf("the holders ran a session dealt by a non-owner client (weights recovered to %.2g)", e)
		}
		var pe *PeerError
		if !errors.Is(err, ErrUntrustedDealer) || !errors.As(err, &pe) || pe.Peer != m.Holders[0] {
			t.Fatalf("err = %v, want holder 0 refusing with ErrUntrustedDealer", err)
		}
	})
	t.Run("through the owner's dealer the batch reveals no weights", func(t *testing.T) {
		res, err := mallory.Infer(ctx, "victim", atk.Input, InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Dealer != s.boot.ID().String() {
			t.Fatalf("dealer %s, want the owner's %s", res.Dealer, s.boot.ID())
		}
		rec, err := atk.Recover(&tensor.Dense[float64]{Shape: res.Shape, Data: res.Output})
		if err != nil {
			t.Fatal(err)
		}
		errs, err := attack.Errors(rec, w)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"w0", "b0", "w1"} {
			if errs[name] < 0.05 {
				t.Fatalf("weight %s recovered to %.3g: %v", name, errs[name], errs)
			}
		}
	})
}

// TestDealerTrust checks that the owner, not the client, decides who
// deals: the manifest names the advertised dealer, a rogue dealer is
// refused by the client, by the holders and by itself, the owner may deal
// its own sessions, and an owner-signed update of the dealer set takes
// effect without a new upload.
func TestDealerTrust(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "convnet", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	rogue := s.startPeer(t, "rogue", RoleDealer)
	user := s.startPeer(t, "user")
	for _, n := range append([]*Node{user, rogue}, s.holders...) {
		if err := waitLookup(ctx, n, "convnet"); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([][]byte, len(m.Holders))
	for i, h := range m.Holders {
		ids[i] = []byte(h)
	}

	t.Run("a user queries through the owner's dealer", func(t *testing.T) {
		res, err := user.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
		if res.Dealer != s.boot.ID().String() {
			t.Fatalf("dealer %s, want %s", res.Dealer, s.boot.ID())
		}
	})
	t.Run("a rogue dealer is refused by the client", func(t *testing.T) {
		_, err := user.Infer(ctx, "convnet", vec(5, 3), InferOptions{Dealer: rogue.ID().String()})
		if !errors.Is(err, ErrUntrustedDealer) || !errors.Is(err, ErrBadInput) {
			t.Fatalf("err = %v, want ErrUntrustedDealer", err)
		}
	})
	t.Run("a rogue dealer is refused by every holder", func(t *testing.T) {
		for i, h := range m.Holders {
			sid, _ := newSessionID()
			req := &pb.InferRequest{Session: sid, Model: m.ID, Version: m.Version, Party: uint32(i), Holders: ids,
				Dealer: []byte(rogue.ID()), Batch: 1, Input: encodeWords("input", tensor.New[uint64](2))}
			c, err := user.openSession(ctx, i, h, req)
			if err == nil {
				c.s.Reset()
				t.Fatalf("holder %d accepted dealer %s", i, rogue.ID())
			}
			if !errors.Is(err, ErrUntrustedDealer) || !strings.Contains(err.Error(), rogue.ID().String()) {
				t.Fatalf("holder %d: err = %v, want ErrUntrustedDealer naming the dealer", i, err)
			}
		}
	})
	t.Run("a dealer the manifest does not name refuses to deal", func(t *testing.T) {
		sid, _ := newSessionID()
		err := user.requestDeal(ctx, rogue.ID(), sid, m, 1)
		if !errors.Is(err, ErrUntrustedDealer) {
			t.Fatalf("err = %v, want ErrUntrustedDealer", err)
		}
	})
	t.Run("the owner deals its own sessions", func(t *testing.T) {
		res, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{Dealer: DealerSelf})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
	})
	t.Run("the owner updates the dealer set", func(t *testing.T) {
		m2, err := s.client.SetDealers(ctx, "convnet", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m2.Shares() != m.Version || m2.Version <= m.Version {
			t.Fatalf("update: version %d shares %d, first version %d", m2.Version, m2.Shares(), m.Version)
		}
		for _, n := range []*Node{s.boot, s.holders[0], s.holders[1], user} {
			waitDealers(ctx, t, n, "convnet", nil)
		}
		if _, err := user.Infer(ctx, "convnet", vec(5, 3), InferOptions{}); !errors.Is(err, ErrNoDealer) {
			t.Fatalf("no dealers named: err = %v, want ErrNoDealer", err)
		}
		if _, err := user.SetDealers(ctx, "convnet", []peer.ID{rogue.ID()}); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("a user set the dealers: err = %v", err)
		}
		if _, err := s.client.SetDealers(ctx, "convnet", []peer.ID{rogue.ID()}); err != nil {
			t.Fatal(err)
		}
		waitDealers(ctx, t, user, "convnet", []peer.ID{rogue.ID()})
		for _, h := range s.holders {
			waitDealers(ctx, t, h, "convnet", []peer.ID{rogue.ID()})
		}
		res, err := user.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
		if res.Dealer != rogue.ID().String() {
			t.Fatalf("dealer %s, want the newly named %s", res.Dealer, rogue.ID())
		}
	})
	t.Run("a dead dealer is skipped, the live one deals", func(t *testing.T) {
		dead := s.startPeer(t, "dead", RoleDealer)
		both := []peer.ID{rogue.ID(), dead.ID()}
		if _, err := s.client.SetDealers(ctx, "convnet", both); err != nil {
			t.Fatal(err)
		}
		for _, n := range append([]*Node{user}, s.holders...) {
			waitDealers(ctx, t, n, "convnet", both)
		}
		dead.Close()
		for range 4 {
			res, err := user.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkOutput(t, res, 1022)
			if res.Dealer != rogue.ID().String() {
				t.Fatalf("dealer %s, want the live %s", res.Dealer, rogue.ID())
			}
		}
	})
}

// waitDealers waits until n knows model id's manifest naming dealers,
// pulling the catalog from its peers now and then (a client-mode node that
// missed the gossip catches up that way).
func waitDealers(ctx context.Context, t *testing.T, n *Node, id string, dealers []peer.ID) {
	t.Helper()
	for i := 0; ; i++ {
		if i%20 == 19 {
			_ = n.disc.Sync(ctx)
		}
		m, err := n.disc.Lookup(ctx, id)
		if err == nil && slices.Equal(m.Dealers, dealers) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never saw dealers %v of %q (last: %v, %v)", n.ID(), dealers, id, m, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestMaskSeedBinding checks that a holder opens a dealer's mask set
// against one share set only, across a restart: opening one mask B with
// two weight sets would reveal W - W'.
func TestMaskSeedBinding(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "holder")
	n := startNode(t, repo, true, func(c *Config) { c.Roles = []string{RoleHolder} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seed, err := share.NewSeed(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mb := &dealer.MaskBundle{Party: 0, Parties: 2, Seed: seed}
	first := &holderSession{party: 0, modelKey: "owner/m/1/plan/h0,h1/checksum-a"}
	other := &holderSession{party: 0, modelKey: "owner/m/1/plan/h0,h1/checksum-b"}
	if err := n.bindMaskSeed(ctx, mb, first); err != nil {
		t.Fatal(err)
	}
	if err := n.bindMaskSeed(ctx, mb, first); err != nil {
		t.Fatalf("the same shares again: %v", err)
	}
	if err := n.bindMaskSeed(ctx, mb, other); !errors.Is(err, ErrMaskReuse) {
		t.Fatalf("other shares: err = %v, want ErrMaskReuse", err)
	}
	fresh, _ := share.NewSeed(crand.Reader)
	if err := n.bindMaskSeed(ctx, &dealer.MaskBundle{Parties: 2, Seed: fresh}, other); err != nil {
		t.Fatalf("a fresh mask set: %v", err)
	}
	n.Close()
	n = startNode(t, repo, false, func(c *Config) { c.Roles = []string{RoleHolder} })
	defer n.Close()
	if err := n.bindMaskSeed(ctx, mb, other); !errors.Is(err, ErrMaskReuse) {
		t.Fatalf("after a restart: err = %v, want ErrMaskReuse", err)
	}
}

// TestSameVersionReuploadRefused checks that a holder never replaces the
// shares of a version it stores (masks are bound to them): the owner's
// upload of the same version is refused, a newer version is taken.
func TestSameVersionReuploadRefused(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "convnet", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := shareWeights(p, w, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := [][]byte{[]byte(m.Holders[0]), []byte(m.Holders[1])}
	upload := func(version uint64) error {
		sum := sha256.Sum256(blobs[0])
		hdr := &pb.UploadHeader{Model: m.ID, Mode: m.Mode, Version: version, PlanHash: m.PlanHash, Party: 0,
			Holders: ids, TotalBytes: uint64(len(blobs[0])), Checksum: sum[:]}
		return s.client.upload(ctx, m.Holders[0], hdr, blobs[0], func(int) {})
	}
	if err := upload(m.Version); !errors.Is(err, errBadRequest) || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("same-version re-upload: err = %v, want a refusal", err)
	}
	if err := upload(m.Version - 1); err == nil {
		t.Fatal("an older version was accepted")
	}
	if err := upload(m.Version + 1); err != nil {
		t.Fatalf("a newer version: %v", err)
	}
}
