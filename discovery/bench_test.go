package discovery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// loopbackSwarm starts n Discovery servers on real TCP loopback hosts, all
// bootstrapped from node 0, and waits until they are ready.
func loopbackSwarm(b *testing.B, n int) ([]*Discovery, []host.Host) {
	b.Helper()
	var (
		nodes []*Discovery
		hosts []host.Host
	)
	b.Cleanup(func() {
		for i, d := range nodes {
			_ = d.Close()
			_ = hosts[i].Close()
		}
	})
	for range n {
		d, h := loopbackNode(b, hosts)
		nodes, hosts = append(nodes, d), append(hosts, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, d := range nodes {
		if err := d.WaitReady(ctx); err != nil {
			b.Fatalf("node %d: %v", i, err)
		}
	}
	eventually(b, 10*time.Second, "topic mesh", func() bool {
		for _, d := range nodes {
			if d.meshSize() == 0 {
				return false
			}
		}
		return true
	})
	return nodes, hosts
}

func loopbackNode(b *testing.B, existing []host.Host) (*Discovery, host.Host) {
	b.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Host: h, Server: true, Logger: testLogger()}
	if len(existing) > 0 {
		cfg.Bootstrap = []peer.AddrInfo{{ID: existing[0].ID(), Addrs: existing[0].Addrs()}}
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return d, h
}

// BenchmarkDiscovery10 measures how long a newly published manifest takes
// to reach the registries of all of 10 nodes on TCP loopback (publisher
// included): p50_ms and max_ms. ns/op also includes the end of Publish
// (its DHT put), which may finish after every node has the manifest.
func BenchmarkDiscovery10(b *testing.B) {
	nodes, hosts := loopbackSwarm(b, 10)
	pub := 5 // not the bootstrap node
	sk := hosts[pub].Peerstore().PrivKey(hosts[pub].ID())
	holders := []peer.ID{hosts[1].ID(), hosts[2].ID()}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m := testManifest(fmt.Sprintf("bench-%d", i%4), "", holders, 0)
		m.Version = nextVersion(nodes[pub].reg.get(m.ID), time.Now())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- nodes[pub].Publish(context.Background(), m, sk) }()
		deadline := start.Add(10 * time.Second)
		for _, d := range nodes {
			for version(d, m.ID) < m.Version {
				if time.Now().After(deadline) {
					b.Fatalf("manifest %s v%d did not reach every node in 10 s", m.ID, m.Version)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		lat = append(lat, time.Since(start))
		if err := <-done; err != nil { // the DHT put may finish later
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(10, "nodes")
}

// BenchmarkLateJoiner measures how long a node started after a publish
// takes to list the model: New + WaitReady (dial, DHT, catalog pull).
func BenchmarkLateJoiner(b *testing.B) {
	nodes, hosts := loopbackSwarm(b, 5)
	sk := hosts[1].Peerstore().PrivKey(hosts[1].ID())
	if err := nodes[1].Publish(context.Background(), testManifest("early", "", []peer.ID{hosts[2].ID(), hosts[3].ID()}, 0), sk); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		d, h := loopbackNode(b, hosts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := d.WaitReady(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		for !listed(d, "early") {
			if time.Since(start) > 10*time.Second {
				b.Fatal("late joiner did not list the model in 10 s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		_ = d.Close()
		_ = h.Close()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
}
