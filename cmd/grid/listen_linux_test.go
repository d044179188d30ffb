package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"testing"
)

// TestDaemonRefusesTakenPort holds a loopback TCP port the way kubo does
// (SO_REUSEPORT, which go-libp2p's TCP transport also sets, so both would
// listen) and checks that grid daemon refuses it: one line, exit 1, no
// library logs. A daemon listening on a free port as well still refuses.
func TestDaemonRefusesTakenPort(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port)
	repo, _ := initRepo(t)
	for _, listen := range []string{taken, "/ip4/127.0.0.1/tcp/0," + taken + "/ws", taken} {
		args := []string{"daemon", "--repo", repo, "--api", "none", "--listen", listen}
		if listen == taken {
			args = append(args, "--log-level", "info")
		}
		code, stdout, stderr := runCLI(t, nil, args...)
		first := strings.Split(listen, ",")[len(strings.Split(listen, ","))-1]
		want := "grid: listen address " + first + ": address already in use by another process (stop it, or listen elsewhere with --listen)\n"
		if code != exitFailure || stdout != "" || stderr != want {
			t.Errorf("daemon --listen %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", listen, code, stdout, stderr, want)
		}
	}
	// As a process: go-libp2p's fx logs ("OnStart hook failed", ...) stay
	// silent, the error is one line.
	code, stdout, stderr := gridProcess(t, "daemon", "--repo", repo, "--api", "none", "--listen", taken)
	want := "grid: listen address " + taken + ": address already in use by another process (stop it, or listen elsewhere with --listen)\n"
	if code != exitFailure || stdout != "" || stderr != want {
		t.Errorf("grid daemon process: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}
	// An address libp2p itself fails to bind (UDP taken, no precheck):
	// one line too.
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	quic := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", u.LocalAddr().(*net.UDPAddr).Port)
	code, _, stderr = gridProcess(t, "daemon", "--repo", repo, "--api", "none", "--listen", quic)
	if code != exitFailure || !strings.HasPrefix(stderr, "grid: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "address already in use") {
		t.Errorf("grid daemon --listen %s (taken): exit %d, stderr %q; want exit 1 and one line", quic, code, stderr)
	}
}
