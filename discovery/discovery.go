package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// This file holds the Discovery service itself: the network names, Config,
// the Discovery type, its construction and start (New: registry, DHT,
// gossipsub topic, sync handler, background goroutines) and its stop (Close).

// Network names used by the package.
const (
	// DHTPrefix is the private protocol prefix of the DHT: /grid/kad/1.0.0.
	// It keeps grid nodes off the public IPFS DHT.
	DHTPrefix protocol.ID = "/grid"
	// DHTNamespace is the DHT record namespace of manifests (see DHTKey).
	DHTNamespace = "grid-model"
	// Topic is the gossipsub topic on which manifests are announced.
	Topic = "grid/models/1"
)

// Defaults of the Config tuning fields.
const (
	DefaultSyncInterval      = time.Minute
	DefaultRepublishInterval = 12 * time.Hour
	bootstrapConnectTimeout  = 10 * time.Second
	publishReadyTimeout      = 2 * time.Second
	meshWaitTimeout          = 3 * time.Second
	pushTimeout              = 10 * time.Second
	dhtQuorum                = 3
)

// DHTKey is the DHT record key of a model's manifest: /grid-model/<id>.
func DHTKey(id string) string { return "/" + DHTNamespace + "/" + id }

// Config configures New. Host is required; the zero value of every other
// field is usable.
type Config struct {
	// Host is the libp2p host to run on. Discovery does not close it. Only
	// one Discovery (one gossipsub router) may run on a host.
	Host host.Host
	// Server selects DHT server mode (daemons) or client mode (one-shot
	// CLI peers, which also push their own publishes to their peers
	// directly, since they may exit before gossip leaves).
	Server bool
	// AutoServer (with Server) lets the DHT drop to client mode while the
	// host's reachability is private (dht.ModeAutoServer: a server until
	// AutoNAT says the node is behind a NAT), so that peers do not put an
	// unreachable node in their routing tables and stall their queries
	// dialling it. Nodes that know they are reachable (loopback test
	// swarms, where AutoNAT gives no verdict) keep Server alone.
	AutoServer bool
	// Bootstrap peers are connected at start and retried by WaitReady.
	Bootstrap []peer.AddrInfo
	// Datastore, if set, persists the registry (under
	// /grid/discovery/manifests) and the DHT's records (under
	// /grid/discovery/dht), so a restarted node lists its models at once.
	Datastore datastore.Batching
	// Logger receives refusals (Warn), accepted manifests (Info) and
	// network detail (Debug). Nil: slog.Default().
	Logger *slog.Logger
	// Metrics receives the counters. Nil: NewMetrics(nil), unregistered.
	Metrics *Metrics
	// SyncInterval is how often the node pulls the catalog of one random
	// connected peer (anti-entropy for lost gossip). 0: DefaultSyncInterval;
	// negative: never (catalogs are still pulled from each new peer).
	SyncInterval time.Duration
	// RepublishInterval is how often a server re-puts every known manifest
	// in the DHT and re-provides its advertised roles, before the DHT's 48 h
	// record expiry. 0: DefaultRepublishInterval; negative: never.
	RepublishInterval time.Duration
}

// Discovery finds models and peers: it keeps a registry of verified
// manifests fed by gossipsub, catalog sync with peers, the DHT and the
// local datastore, and it publishes the owner's manifests to all three.
// Its methods are safe for concurrent use.
type Discovery struct {
	cfg     Config
	h       host.Host
	log     *slog.Logger
	metrics *Metrics
	reg     *registry

	dht   *dht.IpfsDHT
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	// repairTopic and repairSub carry repair records (RepairTopic).
	repairTopic *pubsub.Topic
	repairSub   *pubsub.Subscription
	evsub       event.Subscription
	mesh        *meshTracer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	syncMu    sync.Mutex
	lastSync  map[peer.ID]time.Time
	outSyncs  chan struct{} // bounds concurrent outgoing catalog pulls
	inSyncs   chan struct{} // bounds concurrent incoming sync streams
	rolesMu   sync.Mutex
	roles     map[string]bool
	readyOnce atomic.Bool // WaitReady's catalog pull and mesh wait are done
	watchMu   sync.Mutex
	watchers  map[chan struct{}]struct{} // Watch subscribers
	closeOnce sync.Once
	closeErr  error
}

// New starts discovery on cfg.Host: it loads the persisted registry, starts
// the DHT (private prefix, server or client mode) and the gossipsub topic,
// registers the catalog sync protocol and connects to the bootstrap peers
// (failures are logged; WaitReady retries them). ctx bounds only the start.
func New(ctx context.Context, cfg Config) (*Discovery, error) {
	if cfg.Host == nil {
		return nil, errors.New("discovery config: nil host")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.RepublishInterval == 0 {
		cfg.RepublishInterval = DefaultRepublishInterval
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d := &Discovery{
		cfg:      cfg,
		h:        cfg.Host,
		log:      cfg.Logger.With("component", "discovery", "self", cfg.Host.ID()),
		metrics:  cfg.Metrics,
		ctx:      runCtx,
		cancel:   cancel,
		lastSync: make(map[peer.ID]time.Time),
		outSyncs: make(chan struct{}, 4),
		inSyncs:  make(chan struct{}, 16),
		roles:    make(map[string]bool),
		watchers: make(map[chan struct{}]struct{}),
		mesh:     newMeshTracer(),
	}
	var regDS datastore.Datastore
	if cfg.Datastore != nil {
		regDS = cfg.Datastore
	}
	d.reg = newRegistry(regDS)
	if err := d.load(ctx); err != nil {
		cancel()
		return nil, err
	}
	if err := d.start(ctx); err != nil {
		_ = d.stop()
		return nil, err
	}
	return d, nil
}

func (d *Discovery) start(ctx context.Context) error {
	mode := dht.ModeClient
	switch {
	case d.cfg.Server && d.cfg.AutoServer:
		mode = dht.ModeAutoServer
	case d.cfg.Server:
		mode = dht.ModeServer
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTPrefix),
		dht.NamespacedValidator(DHTNamespace, dhtValidator{d}),
		dht.NamespacedValidator(DHTRepairNamespace, chainValidator{d}),
		dht.BootstrapPeers(d.cfg.Bootstrap...),
	}
	if d.cfg.Datastore != nil {
		opts = append(opts, dht.Datastore(namespace.Wrap(d.cfg.Datastore, datastore.NewKey("/grid/discovery/dht"))))
	}
	kdht, err := dht.New(d.h, opts...)
	if err != nil {
		return fmt.Errorf("start dht: %w", err)
	}
	d.dht = kdht

	psOpts := []pubsub.Option{
		pubsub.WithRawTracer(d.mesh),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(MaxManifestSize + 64<<10),
	}
	if d.cfg.Server {
		// Servers find topic peers through the DHT; one-shot clients only
		// talk to their bootstrap peers and would litter the DHT with
		// provider records of peers about to leave.
		psOpts = append(psOpts, pubsub.WithDiscovery(drouting.NewRoutingDiscovery(kdht)), pubsub.WithPeerExchange(true))
	}
	d.ps, err = pubsub.NewGossipSub(d.ctx, d.h, psOpts...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}
	if d.topic, d.sub, err = d.joinTopic(Topic, d.validateMessage); err != nil {
		return err
	}
	if d.repairTopic, d.repairSub, err = d.joinTopic(RepairTopic, d.validateRepairMessage); err != nil {
		return err
	}
	d.evsub, err = d.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe to identify events: %w", err)
	}
	d.h.SetStreamHandler(SyncProtocol, d.handleSync)

	d.wg.Add(4)
	go d.readTopic()
	go d.readRepairs()
	go d.watchPeers()
	go d.tick()

	d.connectBootstrap(ctx)
	return nil
}

// joinTopic registers the validator of topic name, joins and subscribes
// to it. On a subscribe error it still returns the joined topic.
func (d *Discovery) joinTopic(name string, v pubsub.ValidatorEx) (*pubsub.Topic, *pubsub.Subscription, error) {
	if err := d.ps.RegisterTopicValidator(name, v, pubsub.WithValidatorTimeout(5*time.Second)); err != nil {
		return nil, nil, fmt.Errorf("register validator of topic %s: %w", name, err)
	}
	t, err := d.ps.Join(name)
	if err != nil {
		return nil, nil, fmt.Errorf("join topic %s: %w", name, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		return t, nil, fmt.Errorf("subscribe topic %s: %w", name, err) // stop closes t
	}
	return t, sub, nil
}

// DHT returns the node's DHT, for the node's other uses of routing.
func (d *Discovery) DHT() *dht.IpfsDHT { return d.dht }

// Metrics returns the counters the node updates.
func (d *Discovery) Metrics() *Metrics { return d.metrics }

// Close stops discovery: the topic, the sync handler, the DHT and every
// goroutine. It does not close the host. It is safe to call more than once.
func (d *Discovery) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.stop() })
	return d.closeErr
}

func (d *Discovery) stop() error {
	var errs []error
	d.h.RemoveStreamHandler(SyncProtocol)
	for _, sub := range []*pubsub.Subscription{d.sub, d.repairSub} {
		if sub != nil {
			sub.Cancel()
		}
	}
	if d.evsub != nil {
		if err := d.evsub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close event subscription: %w", err))
		}
	}
	for _, t := range []*pubsub.Topic{d.topic, d.repairTopic} {
		if t != nil {
			if err := t.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close topic %s: %w", t.String(), err))
			}
		}
	}
	d.cancel()
	d.wg.Wait()
	if d.dht != nil {
		if err := d.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close dht: %w", err))
		}
	}
	return errors.Join(errs...)
}
