package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %s", path, err, resp.Status)
	}
	return string(b)
}

func TestSwarmFaults(t *testing.T) {
	s := &testSwarm{dir: t.TempDir()}
	s.boot = startNode(t, filepath.Join(s.dir, "boot"), true, func(c *Config) {
		c.Roles = []string{RoleDealer}
		c.APIAddr = "127.0.0.1:0"
	})
	short := func(c *Config) { c.MaxSessions = 2; c.SessionTimeout = 3 * time.Second }
	for i := range 2 {
		s.holders = append(s.holders, s.startHolder(t, i, true, short))
	}
	s.client = startNode(t, filepath.Join(s.dir, "client"), true, func(c *Config) {
		c.Client, c.Roles, c.Listen = true, nil, nil
		c.Bootstrap = []string{s.bootAddr()}
	})
	defer func() { s.close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	if err := s.client.disc.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "seed", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The dealer's warm session takes a session slot at each holder: let
	// it end before the subtests count slots.
	waitWarmed(t, ctx, s.boot, "seed")
	holder := func(i int) (*Node, int) {
		for k, h := range s.holders {
			if h.ID() == m.Holders[i] {
				return h, k
			}
		}
		t.Fatalf("holder %d not found", i)
		return nil, 0
	}

	t.Run("api", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(s.dir, "boot", APIFile))
		if err != nil || strings.TrimSpace(string(b)) != s.boot.APIAddr() {
			t.Fatalf("api file %q (%v), want %s", b, err, s.boot.APIAddr())
		}
		var id IDInfo
		if err := json.Unmarshal([]byte(httpGet(t, s.boot.APIAddr(), "/api/v0/id")), &id); err != nil || id.ID != s.boot.ID().String() || len(id.Addresses) == 0 {
			t.Fatalf("id %+v %v", id, err)
		}
		var peers PeersInfo
		if err := json.Unmarshal([]byte(httpGet(t, s.boot.APIAddr(), "/api/v0/peers")), &peers); err != nil || len(peers.Peers) < 2 {
			t.Fatalf("peers %+v %v", peers, err)
		}
		if _, err := s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{}); err != nil {
			t.Fatal(err)
		}
		metrics := httpGet(t, s.boot.APIAddr(), "/debug/metrics/prometheus")
		for _, want := range []string{`grid_sessions_ok_total{role="dealer"} 1`, "grid_bytes_sent_total", "grid_busy_refusals_total"} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %q:\n%s", want, metrics)
			}
		}
	})

	t.Run("busy and unfinished sessions", func(t *testing.T) {
		h0, _ := holder(0)
		holders := [][]byte{[]byte(m.Holders[0]), []byte(m.Holders[1])}
		share := encodeWords("input", tensor.New[uint64](2))
		var calls []*holderCall
		// A peer opens sessions and never finishes them: the holder keeps
		// at most MaxSessions of them, refuses the rest as busy...
		for i := range 3 {
			sid, _ := newSessionID()
			req := &pb.InferRequest{Session: sid, Model: "seed", Version: m.Version, Party: 0, Holders: holders,
				Dealer: []byte(s.client.ID()), Batch: 1, Input: share}
			c, err := s.client.openSession(ctx, 0, m.Holders[0], req)
			if i < 2 {
				if err != nil {
					t.Fatalf("session %d: %v", i, err)
				}
				calls = append(calls, c)
				continue
			}
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("session beyond MaxSessions: %v, want ErrBusy", err)
			}
		}
		if _, err := s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{}); !errors.Is(err, ErrBusy) {
			t.Fatalf("infer while busy: %v, want ErrBusy", err)
		}
		// ...and frees them at the session timeout.
		deadline := time.Now().Add(10 * time.Second)
		for h0.sessions.len() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions still held after the timeout", h0.sessions.len())
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, c := range calls {
			c.s.Reset()
		}
		if _, err := s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{}); err != nil {
			t.Fatalf("infer after the timeout: %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := s.client.Infer(ctx, "seed", vec(float64(i), 1), InferOptions{Dealer: DealerSelf})
				if err == nil && (len(res.Output) != 1 || res.Output[0] < float64(2*i+4+1000)-0.01 || res.Output[0] > float64(2*i+4+1000)+0.01) {
					err = errors.New("wrong answer")
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil && !errors.Is(err, ErrBusy) {
				t.Fatalf("query %d: %v (only a right answer or busy is allowed)", i, err)
			}
		}
	})

	t.Run("corrupted share", func(t *testing.T) {
		h1, k := holder(1)
		repo := h1.cfg.RepoDir
		h1.Close()
		d, err := pebbleds.NewDatastore(filepath.Join(repo, DatastoreDir))
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Query(ctx, query.Query{Prefix: storePrefix})
		if err != nil {
			t.Fatal(err)
		}
		es, _ := res.Rest()
		flipped := false
		for _, e := range es {
			if strings.Contains(e.Key, "/c/") {
				v := append([]byte(nil), e.Value...)
				v[len(v)-1] ^= 0x55
				if err := d.Put(ctx, dsKey(e.Key), v); err != nil {
					t.Fatal(err)
				}
				flipped = true
			}
		}
		d.Close()
		if !flipped {
			t.Fatal("no chunk found to corrupt")
		}
		s.holders[k] = s.startHolder(t, k, false, short)
		if len(s.holders[k].store.damaged()) != 1 {
			t.Fatalf("damage not reported at start: %v", s.holders[k].store.damaged())
		}
		_, err = s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{})
		var pe *PeerError
		if !errors.Is(err, ErrDamaged) || !errors.As(err, &pe) || pe.Peer != m.Holders[1] {
			t.Fatalf("infer with a damaged holder: %v, want ErrDamaged naming %s", err, m.Holders[1])
		}
	})

	t.Run("missing shares reported", func(t *testing.T) {
		h0, _ := holder(0)
		if got := h0.missingModels(); len(got) != 0 {
			t.Fatalf("missing before: %v", got)
		}
		if err := h0.store.remove(ctx, s.client.ID(), "seed"); err != nil {
			t.Fatal(err)
		}
		got := h0.missingModels()
		if len(got) != 1 || !strings.HasPrefix(got[0], "seed (party 0") {
			t.Fatalf("missing = %v, want seed (party 0 ...)", got)
		}
	})

	t.Run("failed publish leaves no orphans", func(t *testing.T) {
		h0, _ := holder(0)
		h0.cfg.Testing.RefuseUploads = errors.New("disk full")
		defer func() { h0.cfg.Testing.RefuseUploads = nil }()
		_, err := s.client.Publish(ctx, "orphan", p, w, PublishOptions{Holders: 2})
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Peer != h0.ID() || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("publish = %v, want an error naming %s and its reason", err, h0.ID())
		}
		for _, h := range s.holders {
			if _, err := h.store.get(s.client.ID(), "orphan"); !errors.Is(err, ErrUnknownModel) {
				t.Fatalf("holder %s kept shares of the failed publish: %v", h.ID(), err)
			}
		}
		if _, err := s.client.disc.Lookup(ctx, "orphan"); err == nil {
			t.Fatal("a failed publish was announced")
		}
	})

	t.Run("upload over the stream memory limit", func(t *testing.T) {
		// 2 x 1.1 M weights: 17.6 MB of shares per holder, more than
		// libp2p's 16 MiB per-stream memory limit.
		const n = 1_100_000
		bp := &plan.Plan{
			Version: plan.Version, Input: plan.Value{Name: "x", Shape: []int{2}}, Output: "y",
			Weights: []plan.Value{{Name: "W", Shape: []int{2, n}}},
			Nodes:   []plan.Node{{Name: "mm", Op: plan.MatMul, Inputs: []string{"x", "W"}, Output: "y"}},
		}
		bw := plan.Weights{"W": tensor.New[float64](2, n)}
		var last int64
		if _, err := s.client.Publish(ctx, "big", bp, bw, PublishOptions{Holders: 2, Progress: func(d, _ int64) { last = d }}); err != nil {
			t.Fatal(err)
		}
		if last < 2*8*2*n {
			t.Fatalf("uploaded %d bytes", last)
		}
	})

	s.boot.Close()
	if _, err := os.Stat(filepath.Join(s.dir, "boot", APIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api file left after Close: %v", err)
	}
}

// TestDamagedDatastore: a daemon whose pebble table file is truncated still
// starts, with the damaged store moved aside and reported.
func TestDamagedDatastore(t *testing.T) {
	repo := t.TempDir()
	n := startNode(t, repo, true, nil)
	ctx := context.Background()
	blob, _ := encodeWeightSet(map[string]*tensor.Dense[uint64]{"W": tensor.New[uint64](1000)})
	sum := sha256.Sum256(blob)
	meta := shareMeta{Model: "m", Owner: n.ID().String(), Mode: "mpc", Version: 1, PlanHash: strings.Repeat("a", 64),
		Party: 0, Holders: []string{n.ID().String()}, Size: len(blob), Checksum: hex.EncodeToString(sum[:])}
	if err := n.store.put(ctx, meta, blob, nil); err != nil {
		t.Fatal(err)
	}
	n.Close()
	ssts, _ := filepath.Glob(filepath.Join(repo, DatastoreDir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table file written")
	}
	for _, f := range ssts {
		st, _ := os.Stat(f)
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	n2 := startNode(t, repo, false, nil)
	defer n2.Close()
	if n2.DamagedStore() == "" {
		t.Fatal("damaged store not reported")
	}
	if _, err := os.Stat(n2.DamagedStore()); err != nil {
		t.Fatalf("damaged store not kept aside: %v", err)
	}
	if len(n2.store.list()) != 0 {
		t.Fatalf("store after recovery: %v", n2.store.list())
	}
}
