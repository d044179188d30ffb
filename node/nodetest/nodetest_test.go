package nodetest_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// TestMakeCluster runs the seed example on a cluster of 2 holders, then
// again after a holder restarted on its repo.
func TestMakeCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var edited []string
	c, err := nodetest.MakeCluster(ctx, t.TempDir(), nodetest.Config{Holders: 2, Clients: 1,
		Edit: func(kind string, i int, cfg *node.Config) { edited = append(edited, kind) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(edited) != 4 || edited[0] != nodetest.Dealer || edited[3] != nodetest.Client {
		t.Fatalf("Edit saw %v, want the dealer, 2 holders and a client", edited)
	}
	p, w := plan.Seed()
	m, err := c.Clients[0].Publish(ctx, "seed", p, w, node.PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	query := func() {
		t.Helper()
		res, err := c.Clients[0].Infer(ctx, "seed", &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}}, node.InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Output) != 1 || math.Abs(res.Output[0]-plan.SeedAnswer(5, 3)) > 0.01 || res.Dealer != c.Dealer.ID().String() {
			t.Fatalf("answer %v from dealer %s, want [1022] from %s", res.Output, res.Dealer, c.Dealer.ID())
		}
	}
	query()
	if err := c.Holders[1].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartHolder(ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.Holders, c.Holders[1].ID()) {
		t.Fatalf("restarted holder %s is not one of %v", c.Holders[1].ID(), m.Holders)
	}
	query()
}

func TestMakeClusterFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := nodetest.MakeCluster(ctx, t.TempDir(), nodetest.Config{Holders: 1,
		Edit: func(kind string, i int, cfg *node.Config) {
			if kind == nodetest.Holder {
				cfg.MaxSessions = 0
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "MaxSessions") {
		t.Fatalf("MakeCluster with a bad holder config: %v, want the config error", err)
	}
}
