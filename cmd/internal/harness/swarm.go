package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Swarm is a set of daemons on loopback, each with its own repo dir under
// Root; daemon 0 is every other daemon's bootstrap peer.
type Swarm struct {
	Opts  Options
	Root  string   // parent of the repo dirs
	Repos []string // repo dir of daemon i
	IDs   []string // peer ID of daemon i (from grid init)

	daemons   Daemons // daemon i, nil while it is stopped
	mu        sync.Mutex
	cfg       SwarmConfig
	bootstrap string     // daemon 0's first address at its first start
	listen    [][]string // daemon i's listen addresses (no /p2p/) at its first start
}

// SwarmConfig describes a swarm to start.
type SwarmConfig struct {
	N    int      // number of daemons
	Args []string // extra flags for every daemon, e.g. --roles
	// ArgsFor returns extra flags for daemon i (after Args); optional.
	ArgsFor func(i int) []string
	// Prepare, if set, is called with daemon i's repo dir after grid init
	// and before its first start, e.g. to edit its config (SetSessions).
	Prepare func(i int, repo string) error
	// MinPeers is how many peers each daemon must see before NewSwarm
	// returns; 0 means N-1 (everyone sees everyone).
	MinPeers int
	// Timeout bounds the whole start (default 60 s).
	Timeout time.Duration
}

// NewSwarm creates N repos under root with grid init, starts daemon 0 on
// 127.0.0.1/tcp/0, then the others with daemon 0 as bootstrap, and waits
// until each daemon sees MinPeers peers. On error every daemon started is
// killed; on success the caller must Close the swarm.
func NewSwarm(ctx context.Context, opts Options, root string, cfg SwarmConfig) (*Swarm, error) {
	if cfg.N < 1 {
		return nil, fmt.Errorf("harness: swarm of %d daemons", cfg.N)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &Swarm{Opts: opts, Root: root, Repos: make([]string, cfg.N), IDs: make([]string, cfg.N),
		cfg: cfg, listen: make([][]string, cfg.N)}
	s.daemons.Grow(cfg.N)
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for i := range cfg.N {
		s.Repos[i] = filepath.Join(root, fmt.Sprintf("node%d", i))
		id, err := s.initRepo(ctx, i, s.Repos[i])
		if err != nil {
			return nil, err
		}
		s.IDs[i] = id
	}
	for i := range cfg.N {
		d, err := StartDaemon(ctx, opts, s.Repos[i], s.args(i, nil)...)
		if err != nil {
			return nil, err
		}
		s.daemons.Set(i, d)
		s.mu.Lock()
		s.listen[i] = TransportAddrs(d.Addrs)
		if i == 0 {
			s.bootstrap = d.Addr()
		}
		s.mu.Unlock()
	}
	min := cfg.MinPeers
	if min == 0 {
		min = cfg.N - 1
	}
	if err := s.WaitPeers(ctx, min); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Bootstrap is daemon 0's first address, for client --bootstrap flags. It
// stays valid across restarts (Start reuses the ports).
func (s *Swarm) Bootstrap() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootstrap
}

// Daemon returns daemon i, nil while it is stopped.
func (s *Swarm) Daemon(i int) *Daemon { return s.daemons.Get(i) }

// Running returns the daemons currently started.
func (s *Swarm) Running() []*Daemon { return s.daemons.Running() }

// WaitPeers polls every running daemon's API until each sees at least min
// peers, or ctx ends (the error then names the daemons short of peers).
func (s *Swarm) WaitPeers(ctx context.Context, min int) error {
	return s.daemons.WaitPeers(ctx, min)
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

// Stop stops daemon i (SIGTERM, then SIGKILL after the grace time).
func (s *Swarm) Stop(i int) error { return s.daemons.Stop(i) }

// Kill kills daemon i with SIGKILL.
func (s *Swarm) Kill(i int) { s.daemons.Kill(i) }

// Start starts daemon i again from its repo dir after a Stop or Kill. It
// listens on the addresses it printed at its first start (so the others'
// bootstrap address for daemon 0 stays valid), bootstraps from daemon 0 like
// at first, and takes the swarm's flags plus extra. Daemons started with
// --announce print the announced addresses, not the listen ones: restart
// those with StartDaemon and flags of your own.
func (s *Swarm) Start(ctx context.Context, i int, extra ...string) (*Daemon, error) {
	return s.StartWith(ctx, i, nil, extra...)
}

// StartWith is Start on other listen addresses (nil: those of the first
// start), e.g. with --announce among extra. Later Starts go back to the
// first start's addresses.
func (s *Swarm) StartWith(ctx context.Context, i int, listen []string, extra ...string) (*Daemon, error) {
	s.mu.Lock()
	if listen == nil {
		listen = s.listen[i]
	}
	args := s.args(i, listen)
	s.mu.Unlock()
	if s.daemons.Get(i) != nil {
		return nil, fmt.Errorf("harness: daemon %d is running", i)
	}
	d, err := StartDaemon(ctx, s.Opts, s.Repos[i], append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	s.daemons.Set(i, d)
	return d, nil
}

// initRepo runs grid init for daemon i's repo, then SwarmConfig.Prepare.
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

// Index returns the index of the daemon whose peer ID is id, or -1.
func (s *Swarm) Index(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Index(s.IDs, id)
}

// args builds daemon i's flags; listen nil means 127.0.0.1/tcp/0.
func (s *Swarm) args(i int, listen []string) []string {
	boot := ""
	if i > 0 {
		boot = s.bootstrap
	}
	args := append(LoopbackFlags(listen, nil, boot), s.cfg.Args...)
	if s.cfg.ArgsFor != nil {
		args = append(args, s.cfg.ArgsFor(i)...)
	}
	return args
}

// StopAll stops every running daemon in parallel and joins their errors.
func (s *Swarm) StopAll() error { return s.daemons.StopAll() }

// Close kills every daemon still running. It is safe to call more than once
// and on a partly started swarm.
func (s *Swarm) Close() { s.daemons.Close() }

// RemoveLogs deletes the daemons' log files (repo+".log").
func (s *Swarm) RemoveLogs() {
	for _, r := range s.Repos {
		_ = os.Remove(r + ".log")
	}
}

// Add creates a new repo and starts one more daemon bootstrapped from
// daemon 0 (a late joiner), returning its index.
func (s *Swarm) Add(ctx context.Context, extra ...string) (int, *Daemon, error) {
	s.mu.Lock()
	i := len(s.Repos)
	repo := filepath.Join(s.Root, fmt.Sprintf("node%d", i))
	s.Repos = append(s.Repos, repo)
	s.IDs = append(s.IDs, "")
	s.daemons.Grow(1)
	s.listen = append(s.listen, nil)
	args := s.args(i, nil)
	s.mu.Unlock()
	id, err := s.initRepo(ctx, i, repo)
	if err != nil {
		return i, nil, err
	}
	d, err := StartDaemon(ctx, s.Opts, repo, append(args, extra...)...)
	if err != nil {
		return i, nil, err
	}
	s.daemons.Set(i, d)
	s.mu.Lock()
	s.IDs[i] = id
	s.listen[i] = TransportAddrs(d.Addrs)
	s.mu.Unlock()
	return i, d, nil
}
