// Package delayproxy is a TCP proxy that adds a fixed one-way delay to every
// byte it forwards, in both directions. It stands in for a wide-area link on
// a machine whose kernel has no netem qdisc: put one proxy in front of each
// daemon, let the daemon announce the proxy's address, and every connection
// to that daemon crosses a link with round-trip time 2*Delay added.
//
// The delay is applied per chunk with pipelining (a chunk read at time t is
// written at t+Delay, while later chunks are already being read), so it adds
// latency without cutting bandwidth, up to a bounded number of bytes in
// flight per direction. The proxy listens and dials only on loopback
// addresses: it is a test tool, not a relay.
package delayproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Default limits; see Config.
const (
	DefaultMaxConns    = 256
	DefaultChunkSize   = 16 << 10
	DefaultMaxInFlight = 64 // chunks per direction, so 1 MiB with the default chunk size
	DefaultDialTimeout = 5 * time.Second
	// MaxDelay bounds Config.Delay: a larger one is a configuration error.
	MaxDelay = 10 * time.Second
)

// Config configures a Proxy.
type Config struct {
	// Listen is the address the proxy listens on, e.g. "127.0.0.1:0". It must
	// be a loopback IP address.
	Listen string
	// Target is the address the proxy forwards to, e.g. "127.0.0.1:4001". It
	// must be a loopback IP address with a port.
	Target string
	// Delay is added to every byte in each direction; a round trip through
	// the proxy gains 2*Delay. Zero forwards without delay.
	Delay time.Duration
	// MaxConns bounds concurrent proxied connections; further ones are
	// accepted and closed at once. 0 means DefaultMaxConns.
	MaxConns int
	// ChunkSize is the read size per chunk. 0 means DefaultChunkSize.
	ChunkSize int
	// MaxInFlight bounds the chunks queued per direction; a full queue stops
	// reading (TCP backpressure). 0 means DefaultMaxInFlight.
	MaxInFlight int
	// DialTimeout bounds the dial to Target. 0 means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Validate checks the configuration and names the first bad field.
func (c Config) Validate() error {
	if err := checkLoopback("Listen", c.Listen); err != nil {
		return err
	}
	if err := checkLoopback("Target", c.Target); err != nil {
		return err
	}
	if _, port, _ := net.SplitHostPort(c.Target); port == "0" {
		return fmt.Errorf("Target %q: port 0 cannot be dialed", c.Target)
	}
	if c.Delay < 0 || c.Delay > MaxDelay {
		return fmt.Errorf("Delay %s: must be in [0, %s]", c.Delay, MaxDelay)
	}
	if c.MaxConns < 0 || c.ChunkSize < 0 || c.MaxInFlight < 0 || c.DialTimeout < 0 {
		return errors.New("MaxConns, ChunkSize, MaxInFlight and DialTimeout must not be negative")
	}
	return nil
}

func checkLoopback(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, addr, err)
	}
	if port == "" {
		return fmt.Errorf("%s %q: missing port", field, addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: not a loopback IP address", field, addr)
	}
	return nil
}

// Stats counts what a Proxy did.
type Stats struct {
	Accepted int64 // connections accepted and forwarded
	Refused  int64 // connections closed at once (MaxConns reached, or Target unreachable)
	Active   int64 // connections open now
	BytesUp  int64 // client -> target
	BytesDn  int64 // target -> client
}

// Proxy is a running delaying proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg Config
	ln  net.Listener

	accepted, refused, active, up, dn atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New validates cfg, listens and starts serving. Close stops it.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("delayproxy config: %w", err)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("delayproxy listen %s: %w", cfg.Listen, err)
	}
	p := &Proxy{cfg: cfg, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.cfg.Target }

// Delay is the one-way delay the proxy adds.
func (p *Proxy) Delay() time.Duration { return p.cfg.Delay }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(), Active: p.active.Load(),
		BytesUp: p.up.Load(), BytesDn: p.dn.Load(),
	}
}

// Close stops listening, closes every proxied connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers c so Close can close it; false if the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // listener closed
		}
		if p.active.Load() >= int64(p.cfg.MaxConns) || !p.track(c) {
			p.refused.Add(1)
			_ = c.Close()
			continue
		}
		p.active.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.active.Add(-1)
	defer p.untrack(client)
	defer client.Close()

	target, err := net.DialTimeout("tcp", p.cfg.Target, p.cfg.DialTimeout)
	if err != nil {
		p.refused.Add(1)
		return
	}
	if !p.track(target) {
		_ = target.Close()
		p.refused.Add(1)
		return
	}
	defer p.untrack(target)
	defer target.Close()
	p.accepted.Add(1)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(target, client, &p.up) }()
	go func() { defer wg.Done(); p.pipe(client, target, &p.dn) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, holding each chunk until Delay after it was read.
// When src ends, dst's write side is closed after the queued bytes are out;
// when dst fails, both connections are closed so the peer pipe ends too.
func (p *Proxy) pipe(dst, src net.Conn, counter *atomic.Int64) {
	queue := make(chan chunk, p.cfg.MaxInFlight)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var failed bool
		for ch := range queue {
			if failed {
				continue // drain so the reader never blocks on a dead writer
			}
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.data); err != nil {
				failed = true
				_ = src.Close()
				_ = dst.Close()
				continue
			}
			counter.Add(int64(len(ch.data)))
		}
		if !failed {
			closeWrite(dst)
		}
	}()
	for {
		buf := make([]byte, p.cfg.ChunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			queue <- chunk{data: buf[:n], due: time.Now().Add(p.cfg.Delay)}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			break
		}
	}
	close(queue)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}
