package delayproxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer accepts on loopback and echoes every connection until EOF, then
// closes it. It stops when the test ends.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

func newProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t testing.TB, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{"ok", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1:4001", Delay: 10 * time.Millisecond}, ""},
		{"ok ipv6", Config{Listen: "[::1]:0", Target: "[::1]:4001"}, ""},
		{"listen not loopback", Config{Listen: "0.0.0.0:0", Target: "127.0.0.1:1"}, "Listen"},
		{"target private", Config{Listen: "127.0.0.1:0", Target: "10.0.0.1:80"}, "Target"},
		{"target hostname", Config{Listen: "127.0.0.1:0", Target: "localhost:80"}, "not a loopback IP"},
		{"target port 0", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1:0"}, "port 0"},
		{"target no port", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1"}, "Target"},
		{"negative delay", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1:1", Delay: -1}, "Delay"},
		{"huge delay", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1:1", Delay: time.Hour}, "Delay"},
		{"negative limit", Config{Listen: "127.0.0.1:0", Target: "127.0.0.1:1", MaxConns: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{Listen: "127.0.0.1:0", Target: "192.168.1.1:80"}); err == nil {
		t.Fatal("New accepted a non-loopback target")
	}
}

// TestRoundTripDelay checks that one request/response through the proxy takes
// at least the round trip the proxy adds (2*Delay), and that the bytes come
// back unchanged.
func TestRoundTripDelay(t *testing.T) {
	const delay = 40 * time.Millisecond
	p := newProxy(t, Config{Target: echoServer(t), Delay: delay})
	c := dial(t, p)
	msg := []byte("ping")
	buf := make([]byte, len(msg))
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		if rtt < 2*delay {
			t.Fatalf("round trip %d took %s, want >= %s", i, rtt, 2*delay)
		}
		if !bytes.Equal(buf, msg) {
			t.Fatalf("got %q, want %q", buf, msg)
		}
	}
}

// TestBulkIntegrityAndHalfClose sends 1 MiB through the proxy, half-closes,
// and checks the echo is complete and identical and that the proxy passes the
// half-close on (the echo server then closes, which the client sees as EOF).
func TestBulkIntegrityAndHalfClose(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t), Delay: 5 * time.Millisecond, ChunkSize: 4096, MaxInFlight: 8})
	c := dial(t, p)
	data := make([]byte, 1<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(data))
	}
	st := p.Stats()
	if st.BytesUp != int64(len(data)) || st.BytesDn != int64(len(data)) {
		t.Fatalf("stats = %+v, want %d bytes each way", st, len(data))
	}
}

func TestMaxConns(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t), MaxConns: 1})
	c1 := dial(t, p)
	if _, err := c1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(c1, one); err != nil { // c1 is proxied
		t.Fatal(err)
	}
	c2 := dial(t, p)
	if n, err := c2.Read(one); err == nil {
		t.Fatalf("second connection read %d bytes, want it closed", n)
	}
	if got := p.Stats().Refused; got != 1 {
		t.Fatalf("Refused = %d, want 1", got)
	}
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProxy(t, Config{Target: addr})
	c := dial(t, p)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxy to nowhere, want the connection closed", n)
	}
	if got := p.Stats().Refused; got != 1 {
		t.Fatalf("Refused = %d, want 1", got)
	}
}

// TestCloseEndsConnections checks Close returns with connections still open
// (closing them) and is idempotent.
func TestCloseEndsConnections(t *testing.T) {
	p := newProxy(t, Config{Target: echoServer(t), Delay: time.Millisecond})
	c := dial(t, p)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
	if got := p.Stats().Active; got != 0 {
		t.Fatalf("Active = %d after Close, want 0", got)
	}
	if _, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
}

// BenchmarkThroughput measures bulk throughput through a proxy with a 10 ms
// one-way delay (pipelined, so it should stay close to loopback speed).
func BenchmarkThroughput(b *testing.B) {
	p := newProxy(b, Config{Target: echoServer(b), Delay: 10 * time.Millisecond})
	c := dial(b, p)
	data := make([]byte, 256<<10)
	buf := make([]byte, len(data))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		go func() { _, _ = c.Write(data) }()
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
