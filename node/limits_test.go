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
	p, w := seedModel()
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
