package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDaemons(t *testing.T) {
	ctx := context.Background()
	var s Daemons
	t.Cleanup(s.Close)
	if first := s.Grow(3); first != 0 || s.Len() != 3 {
		t.Fatalf("Grow(3) = %d, len %d", first, s.Len())
	}
	dir := t.TempDir()
	for _, i := range []int{0, 2} {
		d, err := StartDaemon(ctx, fakeOpts(t, "ok"), filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		s.Set(i, d)
	}
	if up := s.Up(); !slices.Equal(up, []int{0, 2}) || len(s.Running()) != 2 || s.Get(1) != nil {
		t.Fatalf("up %v, running %d, slot 1 %v", up, len(s.Running()), s.Get(1))
	}
	if err := s.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	d0 := s.Get(0)
	s.Kill(0)
	if d0.Running() || s.Get(0) != nil {
		t.Fatal("daemon 0 still there after Kill")
	}
	if err := s.Stop(1); err != nil {
		t.Fatalf("stopping an empty slot: %v", err)
	}
	if first := s.Grow(1); first != 3 {
		t.Fatalf("second Grow starts at %d", first)
	}
	d2 := s.Get(2)
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	if d2.Running() || len(s.Up()) != 0 {
		t.Fatalf("after StopAll: daemon 2 running %v, up %v", d2.Running(), s.Up())
	}

	d, err := StartDaemon(ctx, fakeOpts(t, "ignore-term"), filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	s.Set(3, d)
	s.Close()
	s.Close()
	if d.Running() || s.Get(3) != nil {
		t.Fatal("Close left a daemon")
	}
}

func TestTransportAddrs(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWX"}, []string{"/ip4/127.0.0.1/tcp/4001"}},
		{[]string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/2/p2p/Q"}, []string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/2"}},
	}
	for _, tc := range tests {
		if got := TransportAddrs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("TransportAddrs(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLoopbackFlags(t *testing.T) {
	tests := []struct {
		listen, announce []string
		boot             string
		want             string
	}{
		{nil, nil, "", "--listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0"},
		{[]string{"/ip4/127.0.0.1/tcp/1"}, nil, "/ip4/127.0.0.1/tcp/2/p2p/Q",
			"--listen /ip4/127.0.0.1/tcp/1 --api 127.0.0.1:0 --bootstrap /ip4/127.0.0.1/tcp/2/p2p/Q"},
		{[]string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"}, []string{"/ip4/127.0.0.1/tcp/9"}, "",
			"--listen /ip4/127.0.0.1/tcp/1 --listen /ip6/::1/tcp/1 --announce /ip4/127.0.0.1/tcp/9 --api 127.0.0.1:0"},
	}
	for _, tc := range tests {
		if got := strings.Join(LoopbackFlags(tc.listen, tc.announce, tc.boot), " "); got != tc.want {
			t.Errorf("LoopbackFlags(%v, %v, %q) = %s, want %s", tc.listen, tc.announce, tc.boot, got, tc.want)
		}
	}
}
