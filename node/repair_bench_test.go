package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// BenchmarkRepairMLP784 measures one owner-asked repair of the 784-128-128-10
// MLP (118,282 weights, 0.95 MB per share) published over 4 of 5 holders
// with tolerate 1 (CNF: 6 shares, 3 per holder), one holder closed just
// before: the time AskRepair takes (the probes of the dead holder
// included), the repair session's time and the bytes the holders sent
// (transfers and contributions). Each iteration starts a new cluster (not
// timed).
func BenchmarkRepairMLP784(b *testing.B) {
	benchRepair(b, func(ctx context.Context, owner *node.Node, c *nodetest.Cluster, m *discovery.Manifest, _ peer.ID) (*node.RepairResult, error) {
		i := slices.IndexFunc(c.Holders, func(h *node.Node) bool { return h.ID() == m.Holders[1] })
		c.Holders[i].Close()
		return owner.AskRepair(ctx, "mlp")
	})
}

// BenchmarkReshareMLP784 is the owner's re-sharing of the same model with
// every holder up, holder 1 moved to the spare: the session alone.
func BenchmarkReshareMLP784(b *testing.B) {
	benchRepair(b, func(ctx context.Context, owner *node.Node, _ *nodetest.Cluster, m *discovery.Manifest, spare peer.ID) (*node.RepairResult, error) {
		next := slices.Clone(m.Holders)
		next[1] = spare
		return owner.Reshare(ctx, "mlp", next)
	})
}

func benchRepair(b *testing.B, run func(context.Context, *node.Node, *nodetest.Cluster, *discovery.Manifest, peer.ID) (*node.RepairResult, error)) {
	p, w := mlp784()
	var ms, bytes float64
	for range b.N {
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		c, err := nodetest.MakeCluster(ctx, b.TempDir(), nodetest.Config{Holders: 5, Clients: 1,
			Edit: func(_ string, _ int, cfg *node.Config) { cfg.SessionTimeout = 30 * time.Second }})
		if err != nil {
			b.Fatal(err)
		}
		owner := c.Clients[0]
		m, err := owner.Publish(ctx, "mlp", p, w, node.PublishOptions{Holders: 4, Tolerate: 1,
			Repair: discovery.RepairPolicy{Grace: time.Hour}})
		if err != nil {
			b.Fatal(err)
		}
		spare := c.Holders[slices.IndexFunc(c.Holders, func(h *node.Node) bool { return !slices.Contains(m.Holders, h.ID()) })].ID()
		b.StartTimer()
		res, err := run(ctx, owner, c, m, spare)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		ms += float64(res.Duration.Milliseconds())
		bytes += float64(res.BytesMoved)
		_ = c.Close()
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(ms/float64(b.N), "session-ms")
	b.ReportMetric(bytes/float64(b.N), "bytes-sent")
}
