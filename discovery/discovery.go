package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

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
	evsub event.Subscription
	mesh  *meshTracer

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
	if d.cfg.Server {
		mode = dht.ModeServer
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTPrefix),
		dht.NamespacedValidator(DHTNamespace, dhtValidator{d}),
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
	if err := d.ps.RegisterTopicValidator(Topic, d.validateMessage, pubsub.WithValidatorTimeout(5*time.Second)); err != nil {
		return fmt.Errorf("register topic validator: %w", err)
	}
	if d.topic, err = d.ps.Join(Topic); err != nil {
		return fmt.Errorf("join topic %s: %w", Topic, err)
	}
	if d.sub, err = d.topic.Subscribe(); err != nil {
		return fmt.Errorf("subscribe topic %s: %w", Topic, err)
	}
	d.evsub, err = d.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe to identify events: %w", err)
	}
	d.h.SetStreamHandler(SyncProtocol, d.handleSync)

	d.wg.Add(3)
	go d.readTopic()
	go d.watchPeers()
	go d.tick()

	d.connectBootstrap(ctx)
	return nil
}

// connectBootstrap dials every bootstrap peer in parallel and returns how
// many are connected.
func (d *Discovery) connectBootstrap(ctx context.Context) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		n  int
	)
	for _, ai := range d.cfg.Bootstrap {
		if ai.ID == d.h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d.h.Network().Connectedness(ai.ID) == network.Connected {
				mu.Lock()
				n++
				mu.Unlock()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, bootstrapConnectTimeout)
			defer cancel()
			if err := d.h.Connect(cctx, ai); err != nil {
				d.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// WaitReady blocks until the DHT routing table holds at least one peer,
// retrying the bootstrap peers meanwhile. The first time it succeeds it
// also pulls the catalog of every connected peer, so that Models is
// complete, and a server waits (at most a few seconds) to join the
// gossipsub mesh. With no bootstrap peers it returns at once. Its error
// names the bootstrap peers when none answered.
func (d *Discovery) WaitReady(ctx context.Context) error {
	if len(d.cfg.Bootstrap) == 0 {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastDial := time.Now()
	for d.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			ids := make([]peer.ID, len(d.cfg.Bootstrap))
			for i, ai := range d.cfg.Bootstrap {
				ids[i] = ai.ID
			}
			return fmt.Errorf("wait for dht peers (bootstrap %v): %w", ids, ctx.Err())
		case <-d.ctx.Done():
			return errors.New("wait for dht peers: discovery closed")
		case <-tick.C:
		}
		if time.Since(lastDial) > time.Second {
			d.connectBootstrap(ctx)
			lastDial = time.Now()
		}
	}
	if !d.readyOnce.Load() {
		if err := d.Sync(ctx); err != nil {
			d.log.Debug("initial catalog sync incomplete", "err", err)
		}
	}
	if d.cfg.Server && !d.readyOnce.Load() {
		// A daemon also waits, briefly, to be grafted into the topic mesh:
		// gossip forwarded before that would not reach it.
		mctx, cancel := context.WithTimeout(ctx, meshWaitTimeout)
		defer cancel()
		for d.meshSize() == 0 && len(d.topic.ListPeers()) > 0 && mctx.Err() == nil {
			select {
			case <-mctx.Done():
			case <-tick.C:
			}
		}
	}
	d.readyOnce.Store(true)
	return nil
}

// Publish signs m with sk and announces it: into the local registry, on the
// gossipsub topic, as a DHT record and, for a client-mode node, pushed to
// each connected peer. It fills m.Owner (from sk), m.Time (now) and
// m.Version (newer than any known version, at least the Unix time in ms)
// when they are zero, so callers see what was published. It refuses a
// model ID owned by another key (ErrNameTaken) and an explicit Version not
// newer than the known one (ErrStaleVersion).
func (d *Discovery) Publish(ctx context.Context, m *Manifest, sk crypto.PrivKey) error {
	if m == nil {
		return errors.New("publish: nil manifest")
	}
	if sk == nil {
		return fmt.Errorf("publish %q: nil private key", m.ID)
	}
	owner, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("publish %q: signer id: %w", m.ID, err)
	}
	if m.Owner == "" {
		m.Owner = owner
	} else if m.Owner != owner {
		return fmt.Errorf("publish %q: owner %s, key of %s: %w", m.ID, m.Owner, owner, ErrSignerNotOwner)
	}
	now := time.Now().UTC()
	if m.Time.IsZero() {
		m.Time = now
	}
	m.Time = m.Time.UTC().Round(0)
	known := d.reg.get(m.ID)
	if known != nil && known.m.Owner != owner {
		err := fmt.Errorf("publish %q: owned by %s: %w", m.ID, known.m.Owner, ErrNameTaken)
		d.refused(sourceLocal, d.h.ID(), m, err)
		return err
	}
	if m.Version == 0 {
		m.Version = nextVersion(known, now)
	}
	return d.sealAndAnnounce(ctx, m, sk)
}

// Unpublish replaces the model's manifest with a tombstone signed by sk
// (a higher version with Deleted set), announced like Publish. Only the
// owner may do so: another key gets ErrNotOwner, and the refusal is logged
// and counted. An unknown or already unpublished ID gives ErrNotFound.
func (d *Discovery) Unpublish(ctx context.Context, id string, sk crypto.PrivKey) error {
	if sk == nil {
		return fmt.Errorf("unpublish %q: nil private key", id)
	}
	signer, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("unpublish %q: signer id: %w", id, err)
	}
	if _, err := d.Lookup(ctx, id); err != nil {
		return fmt.Errorf("unpublish: %w", err)
	}
	known := d.reg.get(id)
	if known == nil || known.m.Deleted {
		return fmt.Errorf("unpublish %q: %w", id, ErrNotFound)
	}
	if known.m.Owner != signer {
		d.metrics.UnpublishRefused.Inc()
		d.log.Warn("unpublish refused", "id", id, "owner", known.m.Owner, "signer", signer)
		return fmt.Errorf("unpublish %q: owned by %s, key of %s: %w", id, known.m.Owner, signer, ErrNotOwner)
	}
	now := time.Now().UTC().Round(0)
	t := &Manifest{ID: id, Owner: signer, Version: nextVersion(known, now), Time: now, Deleted: true}
	return d.sealAndAnnounce(ctx, t, sk)
}

// nextVersion is the version for a new manifest: the Unix time in ms, or
// one more than the known version if that is not newer. Time-based
// versions let an owner publish from a fresh process that knows nothing.
func nextVersion(known *entry, now time.Time) uint64 {
	v := uint64(max(now.UnixMilli(), 1))
	if known != nil && v <= known.m.Version {
		v = known.m.Version + 1
	}
	return v
}

func (d *Discovery) sealAndAnnounce(ctx context.Context, m *Manifest, sk crypto.PrivKey) error {
	env, err := Seal(m, sk)
	if err != nil {
		d.refused(sourceLocal, d.h.ID(), m, err)
		return fmt.Errorf("publish: %w", err)
	}
	opened, err := Open(env)
	if err != nil {
		return fmt.Errorf("publish %q: reopen own envelope: %w", m.ID, err)
	}
	if _, err := d.accept(ctx, sourceLocal, d.h.ID(), opened, env); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return d.announce(ctx, opened, env)
}

// announce spreads an accepted envelope: gossipsub, DHT, and direct pushes
// from client-mode nodes. A DHT failure is returned unless the node has no
// DHT peer at all (a lone node keeps the record locally).
func (d *Discovery) announce(ctx context.Context, m *Manifest, env []byte) error {
	if err := d.gossip(ctx, env); err != nil {
		d.log.Warn("gossip manifest", "id", m.ID, "version", m.Version, "err", err)
	}
	var pushWG sync.WaitGroup
	if !d.cfg.Server {
		pushWG.Add(1)
		go func() {
			defer pushWG.Done()
			d.pushAll(ctx, m, env)
		}()
	}
	err := d.dht.PutValue(ctx, DHTKey(m.ID), env)
	pushWG.Wait()
	if err != nil {
		if errors.Is(err, kb.ErrLookupFailure) && d.dht.RoutingTable().Size() == 0 {
			d.log.Warn("no dht peers: manifest kept in the local dht store only", "id", m.ID)
			return nil
		}
		return fmt.Errorf("publish %q: put dht record: %w", m.ID, err)
	}
	return nil
}

// gossip publishes env on the topic, waiting briefly for a topic peer when
// the node has connections but no known subscriber yet.
func (d *Discovery) gossip(ctx context.Context, env []byte) error {
	if len(d.topic.ListPeers()) == 0 && len(d.h.Network().Peers()) > 0 {
		wctx, cancel := context.WithTimeout(ctx, publishReadyTimeout)
		for len(d.topic.ListPeers()) == 0 && wctx.Err() == nil {
			select {
			case <-wctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
	}
	if err := d.topic.Publish(ctx, env); err != nil {
		return fmt.Errorf("publish on %s: %w", Topic, err)
	}
	return nil
}

// Models returns copies of the current, non-deleted, verified manifests,
// sorted by ID (an empty, non-nil slice when there are none).
func (d *Discovery) Models() []*Manifest {
	out := []*Manifest{}
	for _, e := range d.reg.all() {
		if !e.m.Deleted {
			out = append(out, e.m.Clone())
		}
	}
	return out
}

// Latest returns a copy of the newest verified manifest this node knows
// for id, tombstones included (Deleted set), without asking the network.
// Holders use it, on each Watch signal, to retire shares of unpublished or
// republished models.
func (d *Discovery) Latest(id string) (*Manifest, bool) {
	e := d.reg.get(id)
	if e == nil {
		return nil, false
	}
	return e.m.Clone(), true
}

// Watch subscribes to registry changes: the returned channel receives a
// signal after the registry accepts a newer manifest of any model (a
// publish, republish or tombstone, from gossip, catalog sync, the DHT or
// this node). Signals are coalesced (the channel holds at most one), so a
// reader looks up what it cares about with Latest or Models after each
// signal; it never misses the last change. stop ends the subscription (the
// channel is not closed). Watch does not report what was loaded from the
// datastore at New: read Latest or Models once after subscribing.
func (d *Discovery) Watch() (changed <-chan struct{}, stop func()) {
	c := make(chan struct{}, 1)
	d.watchMu.Lock()
	d.watchers[c] = struct{}{}
	d.watchMu.Unlock()
	return c, func() {
		d.watchMu.Lock()
		delete(d.watchers, c)
		d.watchMu.Unlock()
	}
}

// notifyWatchers signals every Watch subscriber without blocking.
func (d *Discovery) notifyWatchers() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	for c := range d.watchers {
		select {
		case c <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// Lookup returns the model's manifest from the registry or, if unknown
// there, from the DHT (the record is verified and added to the registry).
// An unknown or unpublished ID gives an error wrapping ErrNotFound.
func (d *Discovery) Lookup(ctx context.Context, id string) (*Manifest, error) {
	if err := ValidID(id); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	if e := d.reg.get(id); e != nil {
		return liveClone(e)
	}
	val, err := d.dht.GetValue(ctx, DHTKey(id), dht.Quorum(dhtQuorum))
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) || errors.Is(err, kb.ErrLookupFailure) {
			return nil, fmt.Errorf("lookup %q: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("lookup %q in dht: %w", id, err)
	}
	m, err := Open(val)
	if err != nil {
		d.refused(sourceDHT, "", nil, err)
		return nil, fmt.Errorf("lookup %q: dht record: %w", id, err)
	}
	if m.ID != id {
		err := fmt.Errorf("lookup %q: record for %q: %w", id, m.ID, errBadKey)
		d.refused(sourceDHT, "", m, err)
		return nil, err
	}
	_, aerr := d.accept(ctx, sourceDHT, "", m, val)
	if e := d.reg.get(id); e != nil {
		return liveClone(e)
	}
	return nil, fmt.Errorf("lookup %q: %w", id, aerr)
}

func liveClone(e *entry) (*Manifest, error) {
	if e.m.Deleted {
		return nil, fmt.Errorf("model %q unpublished at version %d: %w", e.m.ID, e.m.Version, ErrNotFound)
	}
	return e.m.Clone(), nil
}

// meshSize is the number of this node's mesh peers on the topic.
func (d *Discovery) meshSize() int {
	return d.mesh.size(func(p peer.ID) bool { return d.h.Network().Connectedness(p) == network.Connected })
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
	if d.sub != nil {
		d.sub.Cancel()
	}
	if d.evsub != nil {
		if err := d.evsub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close event subscription: %w", err))
		}
	}
	if d.topic != nil {
		if err := d.topic.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close topic: %w", err))
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

// load fills the registry from the datastore, verifying every envelope.
func (d *Discovery) load(ctx context.Context) error {
	items, err := d.reg.loadStored(ctx)
	for _, it := range items {
		m, oerr := Open(it.env)
		if oerr != nil {
			d.refused(sourceStore, "", nil, fmt.Errorf("stored %s: %w", it.key, oerr))
			continue
		}
		if it.key != registryPrefix.ChildString(m.ID).String() {
			d.refused(sourceStore, "", m, fmt.Errorf("stored under %s: %w", it.key, errBadKey))
			continue
		}
		_, _ = d.accept(ctx, sourceStore, "", m, it.env)
	}
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	return nil
}

// accept applies a verified manifest to the registry, logging and counting
// the outcome.
func (d *Discovery) accept(ctx context.Context, source string, from peer.ID, m *Manifest, env []byte) (verdict, error) {
	v, err := d.reg.apply(ctx, m, env)
	switch v {
	case verdictAccept:
		d.metrics.Accepted.WithLabelValues(source).Inc()
		d.log.Info("manifest accepted", "id", m.ID, "owner", m.Owner, "version", m.Version,
			"deleted", m.Deleted, "source", source, "from", from)
		d.notifyWatchers()
	case verdictRefuse:
		d.refused(source, from, m, err)
	}
	return v, err
}

// ingest opens env and accepts it.
func (d *Discovery) ingest(ctx context.Context, source string, from peer.ID, env []byte) (verdict, error) {
	m, err := Open(env)
	if err != nil {
		d.refused(source, from, nil, err)
		return verdictRefuse, err
	}
	return d.accept(ctx, source, from, m, env)
}

// refused logs and counts one refusal. A peer that is merely behind (an
// older version in a catalog or DHT answer) is not an attack: that is
// logged at Debug and not counted.
func (d *Discovery) refused(source string, from peer.ID, m *Manifest, err error) {
	attrs := []any{"source", source, "from", from, "reason", reason(err), "err", err}
	if m != nil {
		attrs = append(attrs, "id", m.ID, "owner", m.Owner, "version", m.Version)
	}
	if errors.Is(err, ErrStaleVersion) && (source == sourceSync || source == sourceDHT) {
		d.log.Debug("older manifest ignored", attrs...)
		return
	}
	d.metrics.Refused.WithLabelValues(source, reason(err)).Inc()
	if m != nil && m.Deleted && errors.Is(err, ErrNameTaken) {
		d.metrics.UnpublishRefused.Inc()
	}
	d.log.Warn("manifest refused", attrs...)
}

// validateMessage is the gossipsub topic validator: the envelope must open
// (size, signature, signer = owner, fields) and the registry must accept it
// (name ownership, newer version). A local publish of what the registry
// already holds passes. Stale versions are ignored (the forwarder may just
// be behind), everything else is rejected (the forwarder is penalised).
func (d *Discovery) validateMessage(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	m, err := Open(msg.Data)
	if err != nil {
		d.refused(sourcePubsub, from, nil, err)
		return pubsub.ValidationReject
	}
	v, err := d.reg.check(m, msg.Data)
	switch {
	case v == verdictAccept, v == verdictDuplicate && from == d.h.ID():
		msg.ValidatorData = m
		return pubsub.ValidationAccept
	case v == verdictDuplicate:
		return pubsub.ValidationIgnore
	}
	d.refused(sourcePubsub, from, m, err)
	if errors.Is(err, ErrStaleVersion) || errors.Is(err, errRegistryFull) {
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationReject
}

// readTopic applies every validated topic message to the registry.
func (d *Discovery) readTopic() {
	defer d.wg.Done()
	for {
		msg, err := d.sub.Next(d.ctx)
		if err != nil {
			return
		}
		m, ok := msg.ValidatorData.(*Manifest)
		if !ok {
			_, _ = d.ingest(d.ctx, sourcePubsub, msg.ReceivedFrom, msg.Data)
			continue
		}
		_, _ = d.accept(d.ctx, sourcePubsub, msg.ReceivedFrom, m, msg.Data)
	}
}

// watchPeers pulls the catalog of every newly identified peer that speaks
// the sync protocol: the late-joiner catch-up.
func (d *Discovery) watchPeers() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-d.evsub.Out():
			if !ok {
				return
			}
			e := ev.(event.EvtPeerIdentificationCompleted)
			for _, p := range e.Protocols {
				if p == SyncProtocol {
					d.syncAsync(e.Peer, false)
					break
				}
			}
		}
	}
}

// tick runs the periodic work: anti-entropy sync with a random peer, and
// (servers) DHT republishing of manifests and role records.
func (d *Discovery) tick() {
	defer d.wg.Done()
	var syncC, repubC <-chan time.Time
	if d.cfg.SyncInterval > 0 {
		t := time.NewTicker(d.cfg.SyncInterval)
		defer t.Stop()
		syncC = t.C
	}
	if d.cfg.Server && d.cfg.RepublishInterval > 0 {
		t := time.NewTicker(d.cfg.RepublishInterval)
		defer t.Stop()
		repubC = t.C
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-syncC:
			peers := d.syncPeers()
			if len(peers) > 0 {
				d.syncAsync(peers[rand.IntN(len(peers))], true)
			}
		case <-repubC:
			d.republish(d.ctx)
		}
	}
}

// republish re-puts every known envelope in the DHT and re-provides the
// advertised roles.
func (d *Discovery) republish(ctx context.Context) {
	for _, e := range d.reg.all() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := d.dht.PutValue(pctx, DHTKey(e.m.ID), e.env); err != nil {
			d.log.Debug("republish manifest", "id", e.m.ID, "err", err)
		}
		cancel()
	}
	d.rolesMu.Lock()
	roles := make([]string, 0, len(d.roles))
	for r := range d.roles {
		roles = append(roles, r)
	}
	d.rolesMu.Unlock()
	for _, r := range roles {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := d.provideRole(pctx, r); err != nil {
			d.log.Debug("re-provide role", "role", r, "err", err)
		}
		cancel()
	}
}
