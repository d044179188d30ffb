package harness

import (
	"context"
	"errors"
	"strings"
	"sync"
)

// Daemons is a numbered set of daemons, any of which may be down (nil):
// the bookkeeping of a cluster whose members are stopped, killed and
// started again by index. It is safe for concurrent use; the zero value
// has no slots (Grow adds them).
type Daemons struct {
	mu sync.Mutex
	ds []*Daemon // nil while daemon i is down
}

// Grow adds n empty slots and returns the index of the first.
func (s *Daemons) Grow(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := len(s.ds)
	s.ds = append(s.ds, make([]*Daemon, n)...)
	return first
}

// Len is the number of slots, up or down.
func (s *Daemons) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ds)
}

// Get returns daemon i, nil while it is down.
func (s *Daemons) Get(i int) *Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ds[i]
}

// Set records d as daemon i.
func (s *Daemons) Set(i int, d *Daemon) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ds[i] = d
}

// take empties slot i and returns what it held.
func (s *Daemons) take(i int) *Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.ds[i]
	s.ds[i] = nil
	return d
}

// Kill kills daemon i with SIGKILL (a crash, no clean shutdown) and waits
// until it is gone; its slot is then empty.
func (s *Daemons) Kill(i int) {
	if d := s.take(i); d != nil {
		d.Kill()
	}
}

// Stop stops daemon i (Daemon.Stop: SIGTERM, then SIGKILL after the grace
// time); its slot is then empty. Stopping an empty slot is a no-op.
func (s *Daemons) Stop(i int) error {
	d := s.take(i)
	if d == nil {
		return nil
	}
	return d.Stop()
}

// Up returns the indices of the running daemons.
func (s *Daemons) Up() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i, d := range s.ds {
		if d != nil {
			out = append(out, i)
		}
	}
	return out
}

// Running returns the running daemons.
func (s *Daemons) Running() []*Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Daemon
	for _, d := range s.ds {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// WaitPeers polls every running daemon's API until each sees at least min
// peers, or ctx ends (the error then names the daemons short of peers).
func (s *Daemons) WaitPeers(ctx context.Context, min int) error {
	return WaitPeers(ctx, min, s.Running()...)
}

// StopAll stops every running daemon in parallel and joins their errors.
func (s *Daemons) StopAll() error {
	up := s.Up()
	errs := make([]error, len(up))
	var wg sync.WaitGroup
	for k, i := range up {
		wg.Go(func() { errs[k] = s.Stop(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close kills every daemon still running, in parallel, and empties every
// slot. It is safe to call more than once.
func (s *Daemons) Close() {
	s.mu.Lock()
	ds := append([]*Daemon(nil), s.ds...)
	clear(s.ds)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range ds {
		if d != nil {
			wg.Go(d.Kill)
		}
	}
	wg.Wait()
}

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

// LoopbackFlags returns the daemon flags of a cluster member on loopback:
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
