package transport

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestInmemExchange(t *testing.T) {
	ctx := context.Background()
	nw := NewNetwork(3)
	ts := nw.Transports()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, tr := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for j := range 3 {
					if j != i {
						if err := tr.Send(ctx, j, []byte{byte(i), byte(j), byte(round)}); err != nil {
							errs[i] = err
							return
						}
					}
				}
				for j := range 3 {
					if j == i {
						continue
					}
					m, err := tr.Recv(ctx, j)
					if err != nil {
						errs[i] = err
						return
					}
					if !bytes.Equal(m, []byte{byte(j), byte(i), byte(round)}) {
						errs[i] = errors.New("wrong message")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("party %d: %v", i, err)
		}
	}
	for i := range 3 {
		c := nw.Counters(i)
		want := Counters{MsgsSent: 4, MsgsRecv: 4, BytesSent: 12, BytesRecv: 12, Rounds: 2}
		if c != want {
			t.Errorf("party %d counters %+v, want %+v", i, c, want)
		}
	}
}

func TestInmemSendCopies(t *testing.T) {
	ctx := context.Background()
	nw := NewNetwork(2)
	a, b := nw.Transport(0), nw.Transport(1)
	msg := []byte{1, 2, 3}
	if err := a.Send(ctx, 1, msg); err != nil {
		t.Fatal(err)
	}
	msg[0] = 9
	got, err := b.Recv(ctx, 0)
	if err != nil || got[0] != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestInmemBadPeer(t *testing.T) {
	tr := NewNetwork(2).Transport(0)
	for _, p := range []int{-1, 0, 2} {
		if err := tr.Send(context.Background(), p, nil); err == nil {
			t.Errorf("send to %d: want error", p)
		}
		if _, err := tr.Recv(context.Background(), p); err == nil {
			t.Errorf("recv from %d: want error", p)
		}
	}
}

func TestInmemDisconnect(t *testing.T) {
	ctx := context.Background()
	nw := NewNetwork(3)
	done := make(chan error, 1)
	go func() {
		_, err := nw.Transport(0).Recv(ctx, 2)
		done <- err
	}()
	nw.Disconnect(2)
	nw.Disconnect(2) // idempotent
	if err := <-done; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("pending recv: got %v", err)
	}
	if err := nw.Transport(1).Send(ctx, 2, []byte{1}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("send to gone party: got %v", err)
	}
	if err := nw.Transport(2).Send(ctx, 0, []byte{1}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("send by gone party: got %v", err)
	}
	// the others still talk
	if err := nw.Transport(0).Send(ctx, 1, []byte{1}); err != nil {
		t.Fatal(err)
	}
}

func TestInmemDropDelayIntercept(t *testing.T) {
	nw := NewNetwork(2)
	a, b := nw.Transport(0), nw.Transport(1)
	nw.Drop(0, true)
	if err := a.Send(context.Background(), 1, []byte{1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := b.Recv(ctx, 0)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dropped message: got %v", err)
	}
	nw.Drop(0, false)
	nw.Delay(0, 5*time.Millisecond)
	nw.SetIntercept(func(from, to int, m []byte) ([]byte, bool) { return append(m, 42), true })
	start := time.Now()
	if err := a.Send(context.Background(), 1, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 5*time.Millisecond {
		t.Fatal("delay not applied")
	}
	m, err := b.Recv(context.Background(), 0)
	if err != nil || !bytes.Equal(m, []byte{2, 42}) {
		t.Fatalf("got %v, %v", m, err)
	}
	// cancelled context stops a delayed send
	nw.Delay(0, time.Hour)
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ctx, 1, []byte{3}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled send: got %v", err)
	}
}

// TestInmemRoundsReordered: a party that receives a round's message before
// sending its own still counts one round per exchange.
func TestInmemRoundsReordered(t *testing.T) {
	ctx := context.Background()
	nw := NewNetwork(2)
	a, b := nw.Transport(0), nw.Transport(1)
	for range 3 {
		if err := a.Send(ctx, 1, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Recv(ctx, 0); err != nil { // b hears a first
			t.Fatal(err)
		}
		if err := b.Send(ctx, 0, []byte{2}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Recv(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	// two messages in one round count once
	if err := a.Send(ctx, 1, []byte{3}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, 1, []byte{4}); err != nil {
		t.Fatal(err)
	}
	if got := nw.Counters(0).Rounds; got != 4 {
		t.Errorf("party 0: %d rounds, want 4", got)
	}
	if got := nw.Counters(1).Rounds; got != 3 {
		t.Errorf("party 1: %d rounds, want 3", got)
	}
}
