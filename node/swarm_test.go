package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// quietLogger discards logs unless GRID_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("GRID_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func vec(v ...float64) *tensor.Dense[float64] {
	return &tensor.Dense[float64]{Shape: []int{len(v)}, Data: v}
}

// startNode opens a node on repo (initialising it when init is set):
// DefaultLocalConfig with a test session timeout; edit adjusts the config.
func startNode(t testing.TB, repo string, init bool, edit func(*Config)) *Node {
	t.Helper()
	if init {
		if _, err := Init(repo, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultLocalConfig(repo)
	cfg.SessionTimeout = 15 * time.Second
	cfg.Logger = quietLogger()
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("start node %s: %v", repo, err)
	}
	return n
}

// testSwarm is a bootstrap/dealer node, holders (roles holder and host)
// and a client-mode owner/user, all on loopback TCP. It is the internal
// tests' own cluster (they reach into the nodes' state); package nodetest
// is the cluster of everyone else.
type testSwarm struct {
	dir        string
	boot       *Node
	holders    []*Node
	client     *Node
	holderEdit func(*Config) // applied to every holder start, nil for none
}

func (s *testSwarm) bootAddr() string { return s.boot.Addrs()[0].String() }

// newTestSwarm starts a swarm of the given number of holders; holderEdit,
// if given, adjusts every holder's config (restarts included).
func newTestSwarm(t testing.TB, holders int, holderEdit ...func(*Config)) *testSwarm {
	t.Helper()
	s := &testSwarm{dir: t.TempDir()}
	if len(holderEdit) > 0 {
		s.holderEdit = holderEdit[0]
	}
	s.boot = startNode(t, filepath.Join(s.dir, "boot"), true, func(c *Config) { c.Roles = []string{RoleDealer} })
	for i := range holders {
		s.holders = append(s.holders, s.startHolder(t, i, true, nil))
	}
	s.client = startNode(t, filepath.Join(s.dir, "client"), true, func(c *Config) {
		c.Client, c.Roles, c.Listen = true, nil, nil
		c.Bootstrap = []string{s.bootAddr()}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.client.disc.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *testSwarm) startHolder(t testing.TB, i int, init bool, edit func(*Config)) *Node {
	return startNode(t, filepath.Join(s.dir, "holder"+string(rune('a'+i))), init, func(c *Config) {
		c.Roles = []string{RoleHolder, RoleHost}
		c.Bootstrap = []string{s.bootAddr()}
		if s.holderEdit != nil {
			s.holderEdit(c)
		}
		if edit != nil {
			edit(c)
		}
	})
}

func (s *testSwarm) close() {
	var wg sync.WaitGroup
	for _, n := range append([]*Node{s.client, s.boot}, s.holders...) {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
	}
	wg.Wait()
}

func checkOutput(t *testing.T, res *Result, want ...float64) {
	t.Helper()
	if len(res.Output) != len(want) {
		t.Fatalf("output %v (shape %v), want %v", res.Output, res.Shape, want)
	}
	for i := range want {
		if math.Abs(res.Output[i]-want[i]) > 0.01 {
			t.Fatalf("output %v, want %v", res.Output, want)
		}
	}
}

func TestSwarmSeed(t *testing.T) {
	// Holders must drop unpublished shares on discovery's change signal,
	// not on the periodic sweep.
	base := runtime.NumGoroutine()
	s := newTestSwarm(t, 4, func(c *Config) { c.Timing.TombstoneSweep = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	p, w := plan.Seed()
	var progress []int64
	m, err := s.client.Publish(ctx, "convnet", p, w, PublishOptions{Holders: 4, Progress: func(done, total int64) {
		progress = append(progress, done)
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Holders) != 4 || len(progress) == 0 {
		t.Fatalf("manifest holders %v, progress %v", m.Holders, progress)
	}
	for _, h := range m.Holders {
		if h == s.client.ID() || h == s.boot.ID() {
			t.Fatalf("holder %s is the owner or the dealer-only node", h)
		}
	}

	t.Run("mpc with a dealer", func(t *testing.T) {
		res, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
		if res.Dealer != s.boot.ID().String() {
			t.Fatalf("dealer %q, want the dealer node %s", res.Dealer, s.boot.ID())
		}
		if res.Rounds < 1 || res.BytesSent == 0 || len(res.Shape) != 1 || res.Shape[0] != 1 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("dealer self", func(t *testing.T) {
		res, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{Dealer: DealerSelf})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
		if res.Dealer != DealerSelf {
			t.Fatalf("dealer %q", res.Dealer)
		}
	})
	t.Run("dealer is a holder", func(t *testing.T) {
		_, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{Dealer: m.Holders[0].String()})
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("err = %v, want ErrBadInput", err)
		}
	})
	t.Run("wrong shape", func(t *testing.T) {
		_, err := s.client.Infer(ctx, "convnet", vec(5, 3, 1), InferOptions{})
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "[3]") || !strings.Contains(err.Error(), "[2]") {
			t.Fatalf("err = %v, want ErrBadInput naming [3] and [2]", err)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		_, err := s.client.Infer(ctx, "nosuchmodel", vec(5, 3), InferOptions{})
		if !errors.Is(err, ErrUnknownModel) {
			t.Fatalf("err = %v, want ErrUnknownModel", err)
		}
	})
	t.Run("mode mismatch", func(t *testing.T) {
		_, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{Plain: true})
		if !errors.Is(err, ErrModeMismatch) {
			t.Fatalf("err = %v, want ErrModeMismatch", err)
		}
	})
	t.Run("plain", func(t *testing.T) {
		pm, err := s.client.Publish(ctx, "convnet-plain", p, w, PublishOptions{Plain: true})
		if err != nil {
			t.Fatal(err)
		}
		if pm.Mode != "plain" || len(pm.Holders) != 1 {
			t.Fatalf("manifest %+v", pm)
		}
		res, err := s.client.Infer(ctx, "convnet-plain", vec(5, 3), InferOptions{Plain: true})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
	})
	t.Run("no remote inference", func(t *testing.T) {
		if _, err := s.client.Publish(ctx, "private", p, w, PublishOptions{Holders: 2, NoRemoteInference: true}); err != nil {
			t.Fatal(err)
		}
		_, err := s.client.Infer(ctx, "private", vec(5, 3), InferOptions{})
		var pe *PeerError
		if !errors.Is(err, ErrRemoteInferenceDisabled) || !errors.As(err, &pe) {
			t.Fatalf("err = %v, want ErrRemoteInferenceDisabled from a holder", err)
		}
	})
	t.Run("unpublish", func(t *testing.T) {
		if err := s.boot.Unpublish(ctx, "private"); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("unpublish by a non-owner = %v, want ErrNotOwner", err)
		}
		pm, err := s.client.disc.Lookup(ctx, "private")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.client.Unpublish(ctx, "private"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.client.Infer(ctx, "private", vec(5, 3), InferOptions{}); !errors.Is(err, ErrUnknownModel) {
			t.Fatalf("infer after unpublish = %v, want ErrUnknownModel", err)
		}
		// The holders drop their shares once the tombstone reaches them
		// (on discovery's signal: the sweep is an hour here).
		deadline := time.Now().Add(10 * time.Second)
		for _, h := range s.holders {
			if !containsPeer(pm.Holders, h.ID()) {
				continue
			}
			for {
				if _, err := h.store.get(s.client.ID(), "private"); errors.Is(err, ErrUnknownModel) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("holder %s still holds the unpublished model", h.ID())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	t.Run("models", func(t *testing.T) {
		ms, err := s.holders[0].Models(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "convnet,convnet-plain" {
			t.Fatalf("models %v", ids)
		}
	})
	t.Run("restart holders", func(t *testing.T) {
		for i, h := range s.holders {
			h.Close()
			s.holders[i] = nil
		}
		for i := range s.holders {
			s.holders[i] = s.startHolder(t, i, false, nil)
		}
		res, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
	})
	t.Run("holder leaves mid-session", func(t *testing.T) {
		victim := -1
		for i, h := range s.holders {
			if h.ID() == m.Holders[2] {
				victim = i
			}
		}
		reached := make(chan struct{})
		var once sync.Once
		s.holders[victim].cfg.Testing.OnHolderRun = func(ctx context.Context) {
			once.Do(func() { close(reached) })
			<-ctx.Done()
		}
		errc := make(chan error, 1)
		go func() {
			_, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
			errc <- err
		}()
		select {
		case <-reached:
		case err := <-errc:
			t.Fatalf("session ended before the victim ran: %v", err)
		}
		s.holders[victim].Close()
		err := <-errc
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Peer != m.Holders[2] {
			t.Fatalf("err = %v, want a PeerError naming holder 2 %s", err, m.Holders[2])
		}
		if !strings.Contains(err.Error(), m.Holders[2].String()) {
			t.Fatalf("error %q does not name %s", err, m.Holders[2])
		}
		// Sessions are freed everywhere.
		deadline := time.Now().Add(5 * time.Second)
		for _, h := range s.holders {
			for h != s.holders[victim] && h.sessions.len() > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("holder %s still has %d sessions", h.ID(), h.sessions.len())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		s.holders[victim] = s.startHolder(t, victim, false, nil)
		res, err := s.client.Infer(ctx, "convnet", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatalf("query after the holder came back: %v", err)
		}
		checkOutput(t, res, 1022)
	})
	s.close()
	waitGoroutines(t, base)
}

// waitGoroutines waits for the goroutine count to come back near base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+5 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before the swarm:\n%s", n, base, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
