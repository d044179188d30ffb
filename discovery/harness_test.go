package discovery

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testLogger logs to stderr with -v and GRID_TEST_LOG=1, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("GRID_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// swarm is n Discovery nodes on a mocknet, all bootstrapped from node 0.
type swarm struct {
	t     testing.TB
	ctx   context.Context
	mn    mocknet.Mocknet
	nodes []*Discovery
	hosts []host.Host
}

type nodeOpt func(*Config)

// logBuffer is a concurrency-safe log sink for tests that read logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func withLog(w io.Writer) nodeOpt {
	return func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(w, nil)) }
}

func clientMode(c *Config) { c.Server = false }

func withDatastore(ds datastore.Batching) nodeOpt { return func(c *Config) { c.Datastore = ds } }

func newSwarm(t testing.TB, n int) *swarm {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &swarm{t: t, ctx: ctx, mn: mocknet.New()}
	t.Cleanup(func() {
		for _, d := range s.nodes {
			if err := d.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
		cancel()
		_ = s.mn.Close()
	})
	for range n {
		s.add()
	}
	s.waitReady()
	return s
}

// newHost adds a host to the mocknet, linked to every other host.
func (s *swarm) newHost() host.Host {
	s.t.Helper()
	h, err := s.mn.GenPeer()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.mn.LinkAll(); err != nil {
		s.t.Fatal(err)
	}
	return h
}

// add starts one more node, bootstrapped from node 0 (if any).
func (s *swarm) add(opts ...nodeOpt) *Discovery {
	s.t.Helper()
	h := s.newHost()
	cfg := Config{Host: h, Server: true, Logger: testLogger(), SyncInterval: -1}
	if len(s.hosts) > 0 {
		cfg.Bootstrap = []peer.AddrInfo{{ID: s.hosts[0].ID(), Addrs: s.hosts[0].Addrs()}}
	}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(s.ctx, cfg)
	if err != nil {
		s.t.Fatalf("new discovery: %v", err)
	}
	s.nodes = append(s.nodes, d)
	s.hosts = append(s.hosts, h)
	return d
}

// waitReady waits for every node's routing table and topic mesh.
func (s *swarm) waitReady() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	for i, d := range s.nodes {
		if err := d.WaitReady(ctx); err != nil {
			s.t.Fatalf("node %d: %v", i, err)
		}
	}
	if len(s.nodes) < 2 {
		return
	}
	eventually(s.t, 10*time.Second, "topic mesh", func() bool {
		for _, d := range s.nodes {
			if d.meshSize() == 0 {
				return false
			}
		}
		return true
	})
}

func (s *swarm) key(i int) crypto.PrivKey { return s.hosts[i].Peerstore().PrivKey(s.hosts[i].ID()) }

func (s *swarm) holders(n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = s.hosts[i%len(s.hosts)].ID()
	}
	return out
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// version returns the version node d knows for id (0: none).
func version(d *Discovery, id string) uint64 {
	if e := d.reg.get(id); e != nil {
		return e.m.Version
	}
	return 0
}

func listed(d *Discovery, id string) bool {
	for _, m := range d.Models() {
		if m.ID == id {
			return true
		}
	}
	return false
}

func refusedCount(d *Discovery, source, reason string) float64 {
	return counterValue(d.metrics.Refused.WithLabelValues(source, reason))
}

// attacker is a host with a bare gossipsub router (no validator) on the
// manifest topic (or another): it can put any bytes on the wire.
type attacker struct {
	h     host.Host
	topic *pubsub.Topic
}

func (s *swarm) attacker() *attacker { return s.attackerOn(Topic) }

func (s *swarm) attackerOn(name string) *attacker {
	s.t.Helper()
	h := s.newHost()
	ps, err := pubsub.NewGossipSub(s.ctx, h, pubsub.WithFloodPublish(true), pubsub.WithMaxMessageSize(MaxManifestSize+64<<10))
	if err != nil {
		s.t.Fatal(err)
	}
	topic, err := ps.Join(name)
	if err != nil {
		s.t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		s.t.Fatal(err)
	}
	go func() {
		for {
			if _, err := sub.Next(s.ctx); err != nil {
				return
			}
		}
	}()
	for _, other := range s.hosts {
		if err := h.Connect(s.ctx, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
			s.t.Fatal(err)
		}
	}
	eventually(s.t, 10*time.Second, "attacker topic peers", func() bool { return len(topic.ListPeers()) == len(s.hosts) })
	return &attacker{h: h, topic: topic}
}

func (a *attacker) send(t testing.TB, env []byte) {
	t.Helper()
	if err := a.topic.Publish(context.Background(), env); err != nil {
		t.Fatalf("attacker publish: %v", err)
	}
}

func memDatastore() datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }

// counterValue reads a counter (testutil.ToFloat64 would need one more module).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
