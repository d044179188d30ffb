package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/gridmpc/grid/discovery"
)

// Node is a grid peer: a libp2p host with discovery, the share store and
// the stream protocols of its roles. Its methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	sk    crypto.PrivKey
	lock  *repoLock
	ds    ds.Batching
	h     host.Host
	rm    network.ResourceManager
	disc  *discovery.Discovery
	store *shareStore
	met   *metrics
	api   *apiServer

	sessions *sessionTable
	slots    chan struct{} // holder/host sessions being served
	peers    *peerLimits   // per-peer requests being read and memory
	deals    chan struct{} // deals being served
	plans    *planCache
	// damagedStore is where a datastore that failed to open as corrupt was
	// moved ("" if none).
	damagedStore string
	masks        *maskCache
	rep          *repairer // holders' repair state (repair.go)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	errC   error
}

// New opens the repo (taking its lock unless cfg.Client), the store, the
// libp2p host and discovery, registers the stream handlers of cfg.Roles,
// starts the HTTP API when cfg.APIAddr is set and advertises the roles.
// Damaged stored models are logged and refused, not fatal.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sk, err := cfg.loadIdentity()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: cfg, sk: sk, met: newMetrics(),
		sessions: newSessionTable(),
		slots:    make(chan struct{}, cfg.MaxSessions),
		peers:    newPeerLimits(cfg.MaxSessions),
		deals:    make(chan struct{}, cfg.MaxSessions),
		plans:    newPlanCache(),
		masks:    newMaskCache(),
		ctx:      nctx, cancel: cancel,
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if cfg.Client {
		n.ds = dssync.MutexWrap(ds.NewMapDatastore())
	} else {
		if n.lock, err = lockRepo(cfg.RepoDir); err != nil {
			return nil, err
		}
		if n.ds, err = n.openDatastore(log); err != nil {
			return nil, err
		}
	}
	if n.store, err = openStore(ctx, n.ds); err != nil {
		return nil, err
	}
	if n.h, n.rm, err = newHost(cfg, sk); err != nil {
		return nil, err
	}
	n.log = log.With("peer", n.h.ID().String())
	for _, derr := range n.store.damaged() {
		n.log.Error("refusing damaged model", "err", derr)
		n.met.errors.WithLabelValues("damaged").Inc()
		n.met.damaged.Inc()
	}
	boot, err := bootstrapPeers(cfg.Bootstrap, n.h.ID())
	if err != nil {
		return nil, err
	}
	n.disc, err = discovery.New(ctx, discovery.Config{
		Host:   n.h,
		Server: !cfg.Client,
		// Behind a NAT a daemon is a DHT client until AutoNAT finds it
		// reachable; a relay declares itself reachable.
		AutoServer: cfg.NAT && !slices.Contains(cfg.Roles, RoleRelay),
		Bootstrap:  boot,
		Datastore:  n.ds,
		Logger:     n.log,
		Metrics:    discovery.NewMetrics(n.met.reg),
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	n.store.serves = n.servedShares
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

// start serves the node's roles: it reports the models it should hold but
// lacks, registers the stream handlers, starts the HTTP API and the
// background loops (role advertisement, tombstones).
func (n *Node) start() error {
	serving := n.hasRole(RoleHolder) || n.hasRole(RoleHost)
	if serving {
		n.reportMissing()
	}
	n.registerHandlers()
	n.startWarm() // mask metrics; a dealer's warm sessions (warm.go)
	if n.cfg.APIAddr != "" && !n.cfg.Client {
		var err error
		if n.api, err = startAPI(n); err != nil {
			return err
		}
	}
	if len(n.cfg.Roles) > 0 {
		n.wg.Add(1)
		go n.advertiseLoop()
	}
	if serving {
		n.wg.Add(1)
		go n.tombstoneLoop()
	}
	return nil
}

// openDatastore opens the repo's pebble datastore. A damaged datastore
// must not keep the daemon down: it is moved aside (kept for recovery), the
// node starts with an empty one and says so loudly; its models are refused
// until re-uploaded (reportMissing names them).
func (n *Node) openDatastore(log *slog.Logger) (ds.Batching, error) {
	path := filepath.Join(n.cfg.RepoDir, DatastoreDir)
	// pebble would create the dir 0755: it holds the shares.
	if err := privateDir(path); err != nil {
		return nil, fmt.Errorf("datastore dir: %w", err)
	}
	pds, err := pebbleds.NewDatastore(path)
	if err != nil && looksCorrupt(err) {
		aside := path + ".damaged-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(path, aside); rerr == nil {
			log.Error("datastore damaged: moved aside, starting with an empty store", "path", path, "moved_to", aside, "err", err)
			n.met.errors.WithLabelValues("damaged").Inc()
			n.met.damaged.Inc()
			n.damagedStore = aside
			if err = privateDir(path); err == nil {
				pds, err = pebbleds.NewDatastore(path)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open datastore %s: %w", path, err)
	}
	return pds, nil
}

// bootstrapPeers parses the bootstrap addresses, leaving self out.
func bootstrapPeers(addrs []string, self peer.ID) ([]peer.AddrInfo, error) {
	boot := make([]peer.AddrInfo, 0, len(addrs))
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("bootstrap %q: %w", a, err)
		}
		if ai.ID != self {
			boot = append(boot, *ai)
		}
	}
	return boot, nil
}

func (n *Node) hasRole(r string) bool { return slices.Contains(n.cfg.Roles, r) }

// record hands a payload this node received as a holder to the test hook
// Testing.Record, if any.
func (n *Node) record(kind string, data []byte) {
	if r := n.cfg.Testing.Record; r != nil {
		r(kind, data)
	}
}

// registerHandlers sets the stream handlers of the node's roles. A client
// node registers none: its sessions use the streams it opens.
func (n *Node) registerHandlers() {
	if n.cfg.Client {
		return
	}
	if n.hasRole(RoleHolder) || n.hasRole(RoleHost) {
		n.h.SetStreamHandler(ProtoShares, n.serve(svcShares, n.handleShares))
	}
	if n.hasRole(RoleHolder) {
		n.h.SetStreamHandler(ProtoInfer, serveRequest(n, svcInfer, "holder", inferRole, n.handleInfer))
		n.h.SetStreamHandler(ProtoMPC, n.serve(svcMPC, n.handleMPC))
		n.startRepairs()
	}
	if n.hasRole(RoleHolder) || n.hasRole(RoleDealer) {
		n.h.SetStreamHandler(ProtoDealer, n.serve(svcDealer, n.handleDealer))
	}
	if n.hasRole(RoleHost) {
		n.h.SetStreamHandler(ProtoPlain, serveRequest(n, svcPlain, "host", plainRole, n.handlePlain))
	}
}

// advertiseLoop waits for the routing table, then advertises the node's
// roles, retrying quickly until it works once and periodically after.
func (n *Node) advertiseLoop() {
	defer n.wg.Done()
	every := n.cfg.Timing.AdvertiseInterval
	wait := 200 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err := n.disc.WaitReady(ctx)
		if err == nil {
			for _, r := range n.cfg.Roles {
				if aerr := n.disc.Advertise(ctx, r); aerr != nil {
					err = fmt.Errorf("advertise %s: %w", r, aerr)
				}
			}
		}
		cancel()
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Debug("advertise roles", "err", err)
			wait = min(2*wait, 5*time.Second)
		} else {
			if wait != every && (n.hasRole(RoleHolder) || n.hasRole(RoleHost)) {
				n.reportMissing() // the registry is synced with the network now
			}
			wait = every
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait + time.Duration(rand.Int64N(int64(wait/4)+1))):
		}
	}
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.h }

// Discovery is the node's discovery service.
func (n *Node) Discovery() *discovery.Discovery { return n.disc }

// Addrs returns the node's addresses with its /p2p/ component, ready to be
// used as bootstrap addresses.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Peers returns the peers the node is connected to.
func (n *Node) Peers() []peer.ID {
	ps := n.h.Network().Peers()
	slices.Sort(ps)
	return ps
}

// APIAddr returns the HTTP API's address ("" when it does not run).
func (n *Node) APIAddr() string {
	if n.api == nil {
		return ""
	}
	return n.api.addr
}

// Models returns the models the node knows (live, verified manifests).
func (n *Node) Models(ctx context.Context) ([]*discovery.Manifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return n.disc.Models(), nil
}

// Close stops the node: the API (removing the repo's api file), running
// sessions, discovery, the host, the store and the repo lock.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.cancel()
		var errs []error
		if n.api != nil {
			errs = append(errs, n.api.close())
		}
		if n.h != nil {
			for _, p := range []protocol.ID{ProtoShares, ProtoInfer, ProtoMPC, ProtoDealer, ProtoPlain} {
				n.h.RemoveStreamHandler(p)
			}
		}
		n.sessions.cancelAll()
		n.wg.Wait()
		if n.disc != nil {
			errs = append(errs, n.disc.Close())
		}
		if n.h != nil {
			errs = append(errs, n.h.Close())
		}
		if n.ds != nil {
			errs = append(errs, n.ds.Close())
		}
		errs = append(errs, n.lock.release())
		n.errC = errors.Join(errs...)
	})
	return n.errC
}

// looksCorrupt tells whether a datastore open error is damage to its files
// (as opposed to permissions, a missing disk, a lock).
func looksCorrupt(err error) bool {
	if pebble.IsCorruptionError(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"corrupt", "mismatch", "checksum", "truncated", "invalid table", "bad magic"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// DamagedStore returns where a corrupt datastore was moved at start, or "".
func (n *Node) DamagedStore() string { return n.damagedStore }
