package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/delayproxy"
)

// Swarm is a set of daemons on loopback, each with its own repo dir under
// Root, and the client repos that talk to them; daemon 0 is every other
// daemon's bootstrap peer. Daemons are stopped, killed, started again from
// their repo dirs and added by index, always by PID. It is safe for
// concurrent use, but Repos and IDs are only read safely while no Add runs.
type Swarm struct {
	Opts  Options
	Root  string   // parent of the repo dirs
	Repos []string // repo dir of daemon i
	IDs   []string // peer ID of daemon i (from grid init, then as it printed)

	cfg       SwarmConfig
	mu        sync.Mutex
	members   []member // daemon i's process and addresses
	bootstrap string   // daemon 0's address at its first start
	proxies   []*delayproxy.Proxy
	clients   []string // client repo dirs (NewClient)
	procs     []*Proc  // client commands started in the background
	stopErrs  []string // daemons that did not stop cleanly
}

// member is one daemon's state beside its repo dir and ID.
type member struct {
	d        *Daemon  // nil while it is stopped
	started  bool     // it has run: its peer ID is known
	listen   []string // --listen (no /p2p/): fixed, or as printed at its first start
	announce []string // --announce: its delaying proxy, if any
}

// SwarmConfig describes a swarm to start.
type SwarmConfig struct {
	N    int      // number of daemons
	Args []string // extra flags for every daemon, e.g. --roles
	// ArgsFor returns extra flags for daemon i (after Args); optional.
	ArgsFor func(i int) []string
	// Prepare, if set, is called with each repo dir after grid init and
	// before the repo is used: daemon i's, or with i = -1 a client repo's
	// (NewClient). E.g. to edit its config (SetSessions) or identity.
	Prepare func(i int, repo string) error
	// MinPeers is how many peers each daemon must see before NewSwarm
	// returns; 0 means N-1 (everyone sees everyone).
	MinPeers int
	// Timeout bounds the whole of NewSwarm (default 60 s).
	Timeout time.Duration
	// FixedPorts gives each daemon a port below the kernel's ephemeral
	// range before its first start (see freePort), instead of a port of the
	// kernel's choice: with many daemons, the swarm's own outgoing
	// connections could take a port in that range before a restart binds it
	// again.
	FixedPorts bool
	// Delay, when positive, puts a delaying proxy (cmd/internal/delayproxy)
	// in front of every daemon, adding Delay in each direction; the daemon
	// announces the proxy, so every connection to it goes through it.
	// Implies FixedPorts.
	Delay time.Duration
	// Parallel is how many daemons StartAll starts at once after daemon 0
	// (default 1).
	Parallel int
	// Logf receives notes on what the swarm worked around (a port taken);
	// nil discards them.
	Logf func(format string, args ...any)
}

// NewSwarm creates N repos under root with grid init, starts daemon 0, then
// the others with daemon 0 as bootstrap, and waits until each daemon sees
// MinPeers peers. On error every daemon started is killed; on success the
// caller must Close the swarm.
func NewSwarm(ctx context.Context, opts Options, root string, cfg SwarmConfig) (*Swarm, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := CreateSwarm(ctx, opts, root, cfg)
	if err != nil {
		return nil, err
	}
	min := cfg.MinPeers
	if min == 0 {
		min = cfg.N - 1
	}
	if err = s.StartAll(ctx); err == nil {
		err = s.WaitPeers(ctx, min)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// CreateSwarm makes the N repos under root (grid init, then Prepare) and,
// with a Delay, their proxies; it starts nothing (StartAll does). On error
// what was made is closed; on success the caller must Close the swarm.
func CreateSwarm(ctx context.Context, opts Options, root string, cfg SwarmConfig) (*Swarm, error) {
	if cfg.N < 1 {
		return nil, fmt.Errorf("harness: swarm of %d daemons", cfg.N)
	}
	s := &Swarm{Opts: opts, Root: root, cfg: cfg}
	for range cfg.N {
		if _, err := s.newMember(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// newMember makes the next daemon's repo (grid init, Prepare) and its
// addresses, and returns its index.
func (s *Swarm) newMember(ctx context.Context) (int, error) {
	s.mu.Lock()
	i := len(s.Repos)
	repo := filepath.Join(s.Root, fmt.Sprintf("node%d", i))
	s.Repos = append(s.Repos, repo)
	s.IDs = append(s.IDs, "")
	s.members = append(s.members, member{})
	s.mu.Unlock()
	id, err := s.initRepo(ctx, i, repo)
	if err != nil {
		return i, err
	}
	var m member
	if s.cfg.FixedPorts || s.cfg.Delay > 0 {
		if m.listen, m.announce, err = s.addresses(s.cfg.Delay); err != nil {
			return i, fmt.Errorf("node%d: %w", i, err)
		}
	}
	s.mu.Lock()
	s.IDs[i], s.members[i] = id, m
	s.mu.Unlock()
	return i, nil
}

// addresses picks a fixed loopback port to listen on and, for a positive
// delay, makes a proxy in front of it to announce (closed with the swarm).
func (s *Swarm) addresses(delay time.Duration) (listen, announce []string, err error) {
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	if delay <= 0 {
		return []string{loopbackTCP(port)}, nil, nil
	}
	p, err := s.proxy(port, delayproxy.Config{Delay: delay})
	if err != nil {
		return nil, nil, err
	}
	return []string{loopbackTCP(port)}, []string{loopbackTCP(p.Addr().Port)}, nil
}

// proxy starts a delaying proxy (pc, with its addresses set here) on a
// loopback port in front of port; the swarm closes it on Close.
func (s *Swarm) proxy(port int, pc delayproxy.Config) (*delayproxy.Proxy, error) {
	pc.Listen, pc.Target = "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", port)
	p, err := delayproxy.New(pc)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.mu.Lock()
	s.proxies = append(s.proxies, p)
	s.mu.Unlock()
	return p, nil
}

// initRepo runs grid init for repo, then SwarmConfig.Prepare (i is -1 for a
// client repo).
func (s *Swarm) initRepo(ctx context.Context, i int, repo string) (string, error) {
	id, err := initRepo(ctx, s.Opts, repo)
	if err != nil {
		return "", err
	}
	if s.cfg.Prepare != nil {
		if err := s.cfg.Prepare(i, repo); err != nil {
			return "", fmt.Errorf("prepare %s: %w", repo, err)
		}
	}
	return id, nil
}

// StartAll starts every stopped daemon: daemon 0 first, then the others,
// SwarmConfig.Parallel at a time, each bootstrapped from daemon 0.
func (s *Swarm) StartAll(ctx context.Context) error {
	if s.Daemon(0) == nil {
		if _, err := s.Start(ctx, 0); err != nil {
			return err
		}
	}
	sem := make(chan struct{}, max(s.cfg.Parallel, 1))
	n := s.Len()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		if s.Daemon(i) != nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, errs[i] = s.Start(ctx, i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Start starts daemon i again from its repo dir after a Stop or Kill (or
// for the first time, after CreateSwarm). It listens on the addresses of
// its first start (so daemon 0's bootstrap address stays valid), announces
// its proxy if it has one, bootstraps from daemon 0, and takes the swarm's
// flags plus extra. A fixed port found taken is replaced by another (the
// daemon announces what it listens on, so the others learn it through the
// DHT). Once a daemon has run, it must print the same peer ID again.
func (s *Swarm) Start(ctx context.Context, i int, extra ...string) (*Daemon, error) {
	s.mu.Lock()
	m := s.members[i]
	s.mu.Unlock()
	return s.start(ctx, i, m.listen, m.announce, extra)
}

// StartProxied starts daemon i again behind a delaying proxy of its own,
// configured by pc (whose Listen and Target are set here): the daemon
// listens on a new loopback port and announces the proxy, so every
// connection to it goes through the proxy. Later Starts go back to its
// usual addresses. Close the proxy when done; Close of the swarm does too.
func (s *Swarm) StartProxied(ctx context.Context, i int, pc delayproxy.Config, extra ...string) (*Daemon, *delayproxy.Proxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	p, err := s.proxy(port, pc)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.start(ctx, i, []string{loopbackTCP(port)}, []string{loopbackTCP(p.Addr().Port)}, extra)
	if err != nil {
		_ = p.Close()
		return nil, nil, err
	}
	return d, p, nil
}

// start starts daemon i on listen (nil: a port of the kernel's choice),
// announcing announce, and records what it printed.
func (s *Swarm) start(ctx context.Context, i int, listen, announce, extra []string) (*Daemon, error) {
	if s.Daemon(i) != nil {
		return nil, fmt.Errorf("harness: daemon %d is running", i)
	}
	d, err := StartDaemon(ctx, s.Opts, s.Repos[i], append(s.args(i, listen, announce), extra...)...)
	fixed := len(listen) > 0 && len(announce) == 0 && s.cfg.FixedPorts
	moved := false
	for try := 0; fixed && err != nil && strings.Contains(err.Error(), "address already in use") && try < 3; try++ {
		// Someone bound the port between freePort and the daemon.
		port, perr := freePort()
		if perr != nil {
			return nil, fmt.Errorf("start node%d: %w", i, perr)
		}
		s.logf("node%d: port in use, retrying on %d", i, port)
		listen, moved = []string{loopbackTCP(port)}, true
		s.mu.Lock()
		s.members[i].listen = listen
		s.mu.Unlock()
		d, err = StartDaemon(ctx, s.Opts, s.Repos[i], append(s.args(i, listen, announce), extra...)...)
	}
	if err != nil {
		return nil, fmt.Errorf("start node%d: %w", i, err)
	}
	if err := s.record(i, d, moved); err != nil {
		d.Kill()
		return nil, err
	}
	return d, nil
}

// record makes d daemon i: its peer ID, its first addresses and, for
// daemon 0 at its first start or on a new port, the bootstrap address.
func (s *Swarm) record(i int, d *Daemon, moved bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &s.members[i]
	if m.started && d.ID != s.IDs[i] {
		return fmt.Errorf("node%d printed peer ID %s, want %s as before", i, d.ID, s.IDs[i])
	}
	if m.listen == nil {
		m.listen = TransportAddrs(d.Addrs)
	}
	if i == 0 && (!m.started || moved) {
		s.bootstrap = d.Addr()
	}
	m.d, m.started, s.IDs[i] = d, true, d.ID
	return nil
}

// args builds daemon i's flags.
func (s *Swarm) args(i int, listen, announce []string) []string {
	boot := ""
	if i > 0 {
		boot = s.Bootstrap()
	}
	args := append(LoopbackFlags(listen, announce, boot), s.cfg.Args...)
	if s.cfg.ArgsFor != nil {
		args = append(args, s.cfg.ArgsFor(i)...)
	}
	return args
}

func (s *Swarm) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// Add creates a new repo (and port and proxy, as for the others) and
// starts one more daemon bootstrapped from daemon 0 (a late joiner),
// returning its index.
func (s *Swarm) Add(ctx context.Context, extra ...string) (int, *Daemon, error) {
	i, err := s.newMember(ctx)
	if err != nil {
		return i, nil, err
	}
	d, err := s.Start(ctx, i, extra...)
	return i, d, err
}

// Bootstrap is daemon 0's address at its first start, for client
// --bootstrap flags. It stays valid across restarts (Start reuses the
// ports).
func (s *Swarm) Bootstrap() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootstrap
}

// Len is the number of daemons, running or not.
func (s *Swarm) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members)
}

// Daemon returns daemon i, nil while it is stopped.
func (s *Swarm) Daemon(i int) *Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[i].d
}

// Up returns the indices of the running daemons.
func (s *Swarm) Up() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i, m := range s.members {
		if m.d != nil {
			out = append(out, i)
		}
	}
	return out
}

// Running returns the running daemons.
func (s *Swarm) Running() []*Daemon {
	var out []*Daemon
	for _, i := range s.Up() {
		if d := s.Daemon(i); d != nil {
			out = append(out, d)
		}
	}
	return out
}

// Index returns the index of the daemon whose peer ID is id, or -1.
func (s *Swarm) Index(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Index(s.IDs, id)
}

// WaitPeers polls every running daemon's API until each sees at least min
// peers, or ctx ends (the error then names the daemons short of peers).
func (s *Swarm) WaitPeers(ctx context.Context, min int) error {
	return WaitPeers(ctx, min, s.Running()...)
}

// WaitPeers polls the daemons' APIs until each sees at least min peers.
func WaitPeers(ctx context.Context, min int, ds ...*Daemon) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var short []string
		for _, d := range ds {
			ps, err := d.Peers(ctx)
			if err != nil || len(ps) < min {
				short = append(short, fmt.Sprintf("%s (%d peers, err %v)", filepath.Base(d.Repo), len(ps), err))
			}
		}
		if len(short) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d peers each: %w; short: %v", min, ctx.Err(), short)
		case <-tick.C:
		}
	}
}

// take empties daemon i's slot and returns what it held.
func (s *Swarm) take(i int) *Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.members[i].d
	s.members[i].d = nil
	return d
}

// Stop stops daemon i (Daemon.Stop: SIGTERM, then SIGKILL after the grace
// time). An unclean exit is returned and kept in StopErrors. Stopping a
// stopped daemon is a no-op.
func (s *Swarm) Stop(i int) error {
	d := s.take(i)
	if d == nil {
		return nil
	}
	err := d.Stop()
	if err != nil {
		s.mu.Lock()
		s.stopErrs = append(s.stopErrs, fmt.Sprintf("node%d: %v", i, err))
		s.mu.Unlock()
	}
	return err
}

// Kill kills daemon i with SIGKILL (a crash, no clean shutdown) and waits
// until it is gone.
func (s *Swarm) Kill(i int) {
	if d := s.take(i); d != nil {
		d.Kill()
	}
}

// StopAll stops every running daemon in parallel and joins their errors.
func (s *Swarm) StopAll() error {
	up := s.Up()
	errs := make([]error, len(up))
	var wg sync.WaitGroup
	for k, i := range up {
		wg.Go(func() { errs[k] = s.Stop(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StopErrors lists the stops of daemons that did not exit cleanly on
// SIGTERM ("node3: ..."), in order.
func (s *Swarm) StopErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stopErrs)
}

// Close kills every client command and daemon still running, in parallel,
// and closes the proxies. It is safe to call more than once and on a
// partly made swarm.
func (s *Swarm) Close() {
	s.mu.Lock()
	procs, proxies := s.procs, s.proxies
	s.procs, s.proxies = nil, nil
	var ds []*Daemon
	for i := range s.members {
		if d := s.members[i].d; d != nil {
			ds = append(ds, d)
			s.members[i].d = nil
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.Kill)
	}
	for _, d := range ds {
		wg.Go(d.Kill)
	}
	wg.Wait()
	for _, p := range proxies {
		_ = p.Close()
	}
}
