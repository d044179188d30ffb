package harness

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
)

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

func TestFreePort(t *testing.T) {
	low := ephemeralLow()
	if low < 2048 || low > 65535 {
		t.Fatalf("ephemeralLow = %d", low)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if port >= low || port < 1024 {
		t.Fatalf("freePort = %d, want below the ephemeral range (%d)", port, low)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d is not free: %v", port, err)
	}
	ln.Close()
	if got := loopbackTCP(port); got != "/ip4/127.0.0.1/tcp/"+strconv.Itoa(port) {
		t.Fatalf("loopbackTCP = %s", got)
	}
}
