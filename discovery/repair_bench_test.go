package discovery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkRepairVerify measures Amend (decoding excluded: Verify, all N
// signature checks, the clone) of one record replacing one holder, and
// reports the record's encoded size.
func BenchmarkRepairVerify(b *testing.B) {
	for _, n := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("holders=%d", n), func(b *testing.B) {
			fx := newRepairFixtureN(b, n, 1)
			r := fx.sign(b, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
			for b.Loop() {
				if _, err := fx.m.Amend(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(mustMarshalRepair(b, r))), "record_bytes")
		})
	}
}

// BenchmarkRepair10 measures how long a repair record published by one
// node takes to amend the registries of all of 10 nodes on TCP loopback
// (publisher included): p50_ms and max_ms. ns/op also includes the end of
// PublishRepair (its DHT put of the chain). Every 32 repairs the owner
// publishes a new version (not timed), which starts a new chain.
func BenchmarkRepair10(b *testing.B) {
	nodes, _ := loopbackSwarm(b, 10)
	fx := newRepairFixture(b)
	ctx := context.Background()
	cur := fx.m.Clone()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		if i%32 == 0 {
			b.StopTimer()
			cur = benchOwnerVersion(b, nodes, fx, cur)
			b.StartTimer()
		}
		r := fx.sign(b, draft(cur, map[int]peer.ID{0: fx.candidates[i%2]}))
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- nodes[5].PublishRepair(ctx, r) }()
		for _, d := range nodes {
			for m, _ := d.Latest(cur.ID); m.RepairSeq < r.Seq || m.Version != r.Base; m, _ = d.Latest(cur.ID) {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("repair %d did not reach every node in 10 s", r.Seq)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		lat = append(lat, time.Since(start))
		if err := <-done; err != nil { // the DHT put may finish later
			b.Fatal(err)
		}
		amended, err := cur.Amend(r)
		if err != nil {
			b.Fatal(err)
		}
		cur = amended
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
}

// benchOwnerVersion has the owner publish a new version of cur on node 1
// and waits until every node has it.
func benchOwnerVersion(b *testing.B, nodes []*Discovery, fx *repairFixture, cur *Manifest) *Manifest {
	b.Helper()
	next := cur.Clone()
	next.Version, next.Time, next.RepairSeq = 0, time.Time{}, 0
	if err := nodes[1].Publish(context.Background(), next, fx.ownerSK); err != nil {
		b.Fatal(err)
	}
	eventually(b, 10*time.Second, "owner version everywhere", func() bool {
		for _, d := range nodes {
			if version(d, next.ID) != next.Version {
				return false
			}
		}
		return true
	})
	return next
}
