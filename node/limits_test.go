package node

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// TestUnfinishedRequestsBounded is the resource-limit test: a peer opens
// many session streams, announces a request frame on each and never
// finishes sending it. The holder takes a session slot and reserves the
// frame's memory from the infer service before reading it, within the
// sender's per-peer share of both (half the slots, a quarter of the
// service's memory), so the streams beyond it are refused at once instead
// of buffered; another client's query still works during each attack, and
// once the attacker leaves nothing stays reserved.
func TestUnfinishedRequestsBounded(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "seed", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	var victim *Node
	for _, h := range s.holders {
		if h.ID() == m.Holders[0] {
			victim = h
		}
	}
	attacker := startNode(t, t.TempDir()+"/attacker", true, func(c *Config) {
		c.Client, c.Roles, c.Listen = true, nil, nil
		c.Bootstrap = []string{s.bootAddr()}
	})
	defer attacker.Close()
	// The victim's own address book has its listen addresses.
	if err := attacker.h.Connect(ctx, victim.h.Peerstore().PeerInfo(victim.ID())); err != nil {
		t.Fatal(err)
	}
	maxSessions := victim.cfg.MaxSessions
	perPeerMem := serviceLimits[svcInfer].perMem
	tests := []struct {
		name      string
		streams   int
		announced int
		maxOpen   int // streams the holder may keep waiting
	}{
		// 24 x 64 MiB (the frame cap): the peer's memory share holds 4.
		{"large requests", 24, maxTensorFrame, int(perPeerMem / maxTensorFrame)},
		// More small requests than MaxSessions: the peer gets half the slots.
		{"many requests", maxSessions + 8, 1 << 10, maxSessions / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open, refused := floodUnfinished(t, ctx, attacker, victim, tc.streams, tc.announced)
			reserved := serviceMemory(victim, svcInfer)
			t.Logf("%d of %d unfinished %d-byte requests refused; %d held, %d KiB reserved by the infer service",
				refused, tc.streams, tc.announced, len(open), reserved>>10)
			if len(open) > tc.maxOpen || len(open)+refused != tc.streams {
				t.Fatalf("the holder took %d unfinished %d-byte requests from one peer (%d refused), want at most %d",
					len(open), tc.announced, refused, tc.maxOpen)
			}
			if got := victim.peers.reserved(svcInfer, attacker.ID()); got > perPeerMem || reserved > 1<<30 {
				t.Fatalf("infer service reserved %d bytes, %d for the attacker", reserved, got)
			}

			// A query from another peer still gets through, at once.
			res, err := s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{})
			if err != nil {
				t.Fatalf("query during the attack: %v", err)
			}
			checkOutput(t, res, 1022)

			for _, st := range open {
				st.Reset()
			}
			deadline := time.Now().Add(10 * time.Second)
			for serviceMemory(victim, svcInfer) != 0 || victim.sessions.len() != 0 || victim.peers.reserved(svcInfer, attacker.ID()) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("after the attacker left: %d bytes reserved, %d sessions", serviceMemory(victim, svcInfer), victim.sessions.len())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// floodUnfinished opens streams infer streams from attacker to victim, each
// announcing a request frame of announced bytes and sending at most 64 KiB
// of it. It returns the streams the victim keeps waiting for the rest and
// the number it refused (reset or answered) at once.
func floodUnfinished(t *testing.T, ctx context.Context, attacker, victim *Node, streams, announced int) (open []network.Stream, refused int) {
	t.Helper()
	header := binary.AppendUvarint(nil, uint64(announced))
	chunk := make([]byte, min(64<<10, announced-1))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := attacker.h.NewStream(ctx, victim.ID(), ProtoInfer)
			if err != nil {
				t.Error(err)
				return
			}
			_ = st.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := st.Write(append(header, chunk...)); err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				st.Reset()
				return
			}
			// A refused stream is reset (no memory) or answered (busy): the
			// read returns at once. An accepted one waits for the rest of
			// the frame: the read times out.
			_ = st.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, rerr := st.Read(make([]byte, 1))
			mu.Lock()
			defer mu.Unlock()
			if rerr == nil || !errors.Is(rerr, context.DeadlineExceeded) && !isTimeout(rerr) {
				refused++
				st.Reset()
				return
			}
			open = append(open, st)
		}()
	}
	wg.Wait()
	return open, refused
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout() || errors.Is(err, io.ErrNoProgress)
}

// serviceMemory is the memory the node's resource manager has reserved
// for a service.
func serviceMemory(n *Node, svc string) int64 {
	var mem int64
	_ = n.h.Network().ResourceManager().ViewService(svc, func(s network.ServiceScope) error {
		mem = s.Stat().Memory
		return nil
	})
	return mem
}

func TestPeerLimits(t *testing.T) {
	l := newPeerLimits(4)
	a, b := peer.ID("a"), peer.ID("b")
	var dones []func()
	for range 2 {
		done, err := l.startReading(a)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, done)
	}
	if _, err := l.startReading(a); !errors.Is(err, ErrBusy) {
		t.Fatalf("third request read from one peer with MaxSessions 4: %v, want ErrBusy", err)
	}
	if _, err := l.startReading(b); err != nil {
		t.Fatalf("another peer refused: %v", err)
	}
	dones[0]()
	dones[0]() // idempotent
	if _, err := l.startReading(a); err != nil {
		t.Fatalf("after one request was read: %v", err)
	}

	tests := []struct {
		name  string
		svc   string
		sizes []int64
		ok    []bool
	}{
		{"infer share", svcInfer, []int64{200 << 20, 56 << 20, 1}, []bool{true, true, false}},
		{"one request over the share", svcPlain, []int64{256<<20 + 1}, []bool{false}},
		{"uploads", svcShares, []int64{2 << 30, 1}, []bool{true, false}},
		{"dealer not counted", svcDealer, []int64{2 << 30, 2 << 30}, []bool{true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rel []func()
			for i, size := range tc.sizes {
				r, err := l.reserve(tc.svc, a, size)
				if (err == nil) != tc.ok[i] {
					t.Fatalf("reservation %d of %d bytes: %v, want ok=%v", i, size, err, tc.ok[i])
				}
				if err == nil {
					rel = append(rel, r)
				}
			}
			if r, err := l.reserve(tc.svc, b, 1); err != nil {
				t.Fatalf("another peer refused: %v", err)
			} else {
				r()
			}
			for _, r := range rel {
				r()
				r()
			}
			if got := l.reserved(tc.svc, a); got != 0 {
				t.Fatalf("%d bytes still reserved after release", got)
			}
		})
	}
}
