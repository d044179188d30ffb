package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/delayproxy"
	"github.com/gridmpc/grid/cmd/internal/harness"
)

// startParallel bounds how many daemons start at once (the machine has two
// cores; a daemon's start is mostly waiting on its bootstrap).
const startParallel = 4

// cluster is one swarm of daemons: their repo dirs, processes and (wan)
// delaying proxies. Daemon 0 is the bootstrap peer of every other member.
// It starts and stops processes only through the harness, by PID.
type cluster struct {
	hopts harness.Options
	seed  int64
	root  string
	rtt   time.Duration
	logf  func(format string, args ...any)

	repos    []string
	ids      []string
	listen   [][]string // --listen of daemon i (fixed at its first start)
	announce [][]string // --announce of daemon i (wan: its proxy)
	proxies  []*delayproxy.Proxy

	daemons    harness.Daemons // daemon i, nil while it is down
	mu         sync.Mutex
	stopErrors []string
}

// newCluster creates n repos under root (grid init, then the seeded
// identity) and, for rtt > 0, one delaying proxy per daemon. It starts
// nothing; start does.
func newCluster(ctx context.Context, hopts harness.Options, seed int64, root string, n int, rtt time.Duration, logf func(string, ...any)) (*cluster, error) {
	c := &cluster{
		hopts: hopts, seed: seed, root: root, rtt: rtt, logf: logf,
		repos: make([]string, n), ids: make([]string, n), listen: make([][]string, n),
		announce: make([][]string, n),
	}
	c.daemons.Grow(n)
	for i := range n {
		repo, id, err := makeRepo(ctx, hopts.Bin, seed, root, fmt.Sprintf("node%d", i))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.repos[i], c.ids[i] = repo, id
		port, err := freePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		c.listen[i] = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
		if rtt > 0 {
			p, err := delayproxy.New(delayproxy.Config{
				Listen: "127.0.0.1:0", Target: fmt.Sprintf("127.0.0.1:%d", port), Delay: rtt / 2,
			})
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("proxy for node%d: %w", i, err)
			}
			c.proxies = append(c.proxies, p)
			c.announce[i] = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p.Addr().Port)}
		}
	}
	return c, nil
}

// add creates one more member (fresh repo, seeded identity, its own port
// and, in a wan swarm, proxy) and starts it, bootstrapped from daemon 0.
// It returns the new member's index.
func (c *cluster) add(ctx context.Context) (int, error) {
	c.mu.Lock()
	i := len(c.repos)
	c.mu.Unlock()
	repo, id, err := makeRepo(ctx, c.hopts.Bin, c.seed, c.root, fmt.Sprintf("node%d", i))
	if err != nil {
		return i, err
	}
	port, err := freePort()
	if err != nil {
		return i, err
	}
	var announce []string
	if c.rtt > 0 {
		p, err := delayproxy.New(delayproxy.Config{
			Listen: "127.0.0.1:0", Target: fmt.Sprintf("127.0.0.1:%d", port), Delay: c.rtt / 2,
		})
		if err != nil {
			return i, fmt.Errorf("proxy for node%d: %w", i, err)
		}
		announce = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p.Addr().Port)}
		c.mu.Lock()
		c.proxies = append(c.proxies, p)
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.repos = append(c.repos, repo)
	c.ids = append(c.ids, id)
	c.listen = append(c.listen, []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)})
	c.announce = append(c.announce, announce)
	c.daemons.Grow(1)
	c.mu.Unlock()
	return i, c.startOne(ctx, i)
}

// makeRepo runs grid init for root/name and gives it the seeded identity
// of name; it returns the repo dir and its peer ID.
func makeRepo(ctx context.Context, bin string, seed int64, root, name string) (string, string, error) {
	repo := filepath.Join(root, name)
	if _, err := harness.Init(ctx, bin, repo); err != nil {
		return "", "", err
	}
	sk, _, err := DeriveKey(seed, name)
	if err != nil {
		return "", "", err
	}
	id, err := SetIdentity(repo, sk)
	if err != nil {
		return "", "", err
	}
	return repo, id.String(), nil
}

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

// size is the number of members, up or down.
func (c *cluster) size() int { return len(c.repos) }

// args are daemon i's flags.
func (c *cluster) args(i int) []string {
	boot := ""
	if i > 0 {
		boot = c.bootAddr()
	}
	return harness.LoopbackFlags(c.listen[i], c.announce[i], boot)
}

// bootAddr is daemon 0's dialable address with /p2p/: through its proxy in
// a wan swarm.
func (c *cluster) bootAddr() string {
	addr := c.listen[0][0]
	if len(c.announce[0]) > 0 {
		addr = c.announce[0][0]
	}
	return addr + "/p2p/" + c.ids[0]
}

// start starts every member: daemon 0 first, then the others, a few at a
// time, each bootstrapped from daemon 0.
func (c *cluster) start(ctx context.Context) error {
	if err := c.startOne(ctx, 0); err != nil {
		return err
	}
	sem := make(chan struct{}, startParallel)
	errs := make([]error, c.size())
	var wg sync.WaitGroup
	for i := 1; i < c.size(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = c.startOne(ctx, i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startOne starts daemon i (again) from its repo dir.
func (c *cluster) startOne(ctx context.Context, i int) error {
	if c.daemons.Get(i) != nil {
		return fmt.Errorf("node%d is already running", i)
	}
	d, err := harness.StartDaemon(ctx, c.hopts, c.repos[i], c.args(i)...)
	for try := 0; err != nil && strings.Contains(err.Error(), "address already in use") && len(c.announce[i]) == 0 && try < 3; try++ {
		// Someone bound the port between freePort and the daemon: take
		// another (the daemon announces what it listens on, so the
		// others learn the new address through the DHT).
		port, perr := freePort()
		if perr != nil {
			return fmt.Errorf("start node%d: %w", i, perr)
		}
		c.logf("node%d: port in use, retrying on %d", i, port)
		c.mu.Lock()
		c.listen[i] = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
		c.mu.Unlock()
		d, err = harness.StartDaemon(ctx, c.hopts, c.repos[i], c.args(i)...)
	}
	if err != nil {
		return fmt.Errorf("start node%d: %w", i, err)
	}
	if d.ID != c.ids[i] {
		d.Kill()
		return fmt.Errorf("node%d printed peer ID %s, want the seeded %s", i, d.ID, c.ids[i])
	}
	c.daemons.Set(i, d)
	return nil
}

// killOne kills daemon i with SIGKILL: a crash, no clean shutdown.
func (c *cluster) killOne(i int) { c.daemons.Kill(i) }

// stopOne stops daemon i with SIGTERM (SIGKILL after the grace time); an
// unclean exit is recorded, not returned, since the daemon is gone anyway.
func (c *cluster) stopOne(i int) {
	if err := c.daemons.Stop(i); err != nil {
		c.mu.Lock()
		c.stopErrors = append(c.stopErrors, fmt.Sprintf("node%d: %v", i, err))
		c.mu.Unlock()
	}
}

// up returns the indices of the running daemons.
func (c *cluster) up() []int { return c.daemons.Up() }

// daemon returns daemon i, nil while it is down.
func (c *cluster) daemon(i int) *harness.Daemon { return c.daemons.Get(i) }

// running returns the running daemons.
func (c *cluster) running() []*harness.Daemon { return c.daemons.Running() }

// waitPeers waits until every running daemon sees at least min peers.
func (c *cluster) waitPeers(ctx context.Context, min int) error {
	return c.daemons.WaitPeers(ctx, min)
}

// index maps a peer ID to its member index, -1 if it is not a member.
func (c *cluster) index(id string) int { return slices.Index(c.ids, id) }

// rss samples every running daemon's resident set size.
func (c *cluster) rss() []int64 {
	var out []int64
	for _, d := range c.running() {
		if v, err := RSSKiB(d.PID()); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// stopAll stops every running daemon in parallel (SIGTERM, by PID).
func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, i := range c.up() {
		wg.Go(func() { c.stopOne(i) })
	}
	wg.Wait()
}

// Close kills whatever still runs and closes the proxies. Safe to call
// more than once.
func (c *cluster) Close() {
	c.daemons.Close()
	c.mu.Lock()
	ps := c.proxies
	c.proxies = nil
	c.mu.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
}

// removeRepos deletes the daemons' repo dirs (datastores) and the client
// repos (owner, user) under the run's root, keeping the daemons' logs
// (repo+".log") beside them.
func (c *cluster) removeRepos() {
	repos := append([]string{filepath.Join(c.root, "owner"), filepath.Join(c.root, "user")}, c.repos...)
	for _, r := range repos {
		if r != "" && strings.HasPrefix(r, c.root+string(filepath.Separator)) {
			_ = os.RemoveAll(r)
		}
	}
}
