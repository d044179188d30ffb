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
// many session streams, announces the largest request frame (64 MiB) on
// each and never finishes sending it. The holder takes a session slot and
// reserves the frame's memory from the infer service before reading it, so
// the streams beyond the service's memory are reset at once instead of
// buffered; another client's query still works during the attack, and once
// the attacker leaves nothing stays reserved.
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

	const streams = 24
	const announced = maxTensorFrame // 64 MiB, the cap
	header := binary.AppendUvarint(nil, uint64(announced))
	chunk := make([]byte, 64<<10)
	var mu sync.Mutex
	var open []network.Stream
	reset := 0
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
				reset++
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
				reset++
				st.Reset()
				return
			}
			open = append(open, st)
		}()
	}
	wg.Wait()
	reserved := serviceMemory(victim, svcInfer)
	t.Logf("%d of %d unfinished 64 MiB requests refused; %d held, %d MiB reserved by the infer service", reset, streams, len(open), reserved>>20)
	// The infer service's memory limit is 1 GiB (host.go).
	if len(open)*announced > 1<<30 || reset == 0 || len(open)+reset != streams {
		t.Fatalf("the holder took %d unfinished 64 MiB requests from one peer (%d refused)", len(open), reset)
	}
	if reserved > 1<<30 {
		t.Fatalf("infer service reserved %d MiB", reserved>>20)
	}

	// A query from another peer still gets through.
	res, err := s.client.Infer(ctx, "seed", vec(5, 3), InferOptions{})
	if err != nil {
		t.Fatalf("query during the attack: %v", err)
	}
	checkOutput(t, res, 1022)

	for _, st := range open {
		st.Reset()
	}
	deadline := time.Now().Add(10 * time.Second)
	for serviceMemory(victim, svcInfer) != 0 || victim.sessions.len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the attacker left: %d bytes reserved, %d sessions", serviceMemory(victim, svcInfer), victim.sessions.len())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
