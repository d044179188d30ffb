package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// TransportAddrs strips the /p2p/ part of addresses a daemon printed, for
// its --listen flags on a restart.
func TransportAddrs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if i := strings.Index(a, "/p2p/"); i >= 0 {
			a = a[:i]
		}
		out = append(out, a)
	}
	return out
}

// LoopbackFlags returns the daemon flags of a swarm member on loopback:
// --listen for each of listen (none: /ip4/127.0.0.1/tcp/0, a port of the
// kernel's choice), --announce for each of announce, the HTTP API on
// 127.0.0.1:0 and, unless bootstrap is "", --bootstrap.
func LoopbackFlags(listen, announce []string, bootstrap string) []string {
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	var args []string
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	for _, a := range announce {
		args = append(args, "--announce", a)
	}
	args = append(args, "--api", "127.0.0.1:0")
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	return args
}

// loopbackTCP is the multiaddr of a TCP port on 127.0.0.1.
func loopbackTCP(port int) string { return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port) }

// freePort returns a loopback TCP port that is free now and lies below the
// kernel's ephemeral port range. A port from the kernel (":0") would be in
// that range, and between this check and the daemon's bind, the swarm's
// own outgoing connections could take it (seen with 50 daemons); ports
// below the range are only ever taken by an explicit bind.
func freePort() (int, error) {
	lo, hi := 20000, ephemeralLow()
	if hi-lo < 1000 {
		lo = 1024
	}
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("free port: no free loopback port in [%d, %d) after 200 tries", lo, hi)
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux
// default 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	v, err := strconv.Atoi(f[0])
	if err != nil || v < 2048 || v > 65535 {
		return 32768
	}
	return v
}
