package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// BenchmarkRepairMLP784 measures one owner-asked repair of the 784-128-128-10
// MLP (118,282 weights, 0.95 MB per share) published over 4 of 5 holders
// with tolerate 1 (CNF: 6 shares, 3 per holder), one holder closed: the
// time AskRepair takes (probe of the dead holder included) and the bytes
// the holders moved (transfers and contributions). Each iteration starts
// a new cluster (not timed).
func BenchmarkRepairMLP784(b *testing.B) {
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
		i := slices.IndexFunc(c.Holders, func(h *node.Node) bool { return h.ID() == m.Holders[1] })
		c.Holders[i].Close()
		b.StartTimer()
		res, err := owner.AskRepair(ctx, "mlp")
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
	b.ReportMetric(ms/float64(b.N), "ms/repair")
	b.ReportMetric(bytes/float64(b.N), "bytes/repair")
}
