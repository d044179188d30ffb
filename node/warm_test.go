package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

// TestWarmAfterPublish checks that the dealer opens a published model's
// weight masks with its holders without any query (a warm session), and
// that the first query then opens none.
func TestWarmAfterPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := nodetest.MakeCluster(ctx, t.TempDir(), nodetest.Config{Holders: 2, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, w := plan.Seed()
	m, err := c.Clients[0].Publish(ctx, "convnet", p, w, node.PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Dealers) != 1 || m.Dealers[0] != c.Dealer.ID() {
		t.Fatalf("dealers %v, want the cluster's dealer %s", m.Dealers, c.Dealer.ID())
	}
	// Bounded poll: every holder caches the opened masks, with no query.
	for i := 0; ; i++ {
		warm := c.Dealer.MaskStats().Warmed > 0
		for _, h := range c.Holders {
			warm = warm && h.MaskStats().Cached == 1 && h.MaskStats().Opened == 1
		}
		if warm {
			break
		}
		if i == 300 || ctx.Err() != nil {
			t.Fatalf("after %d polls: dealer %+v, holders %+v, %+v", i, c.Dealer.MaskStats(), c.Holders[0].MaskStats(), c.Holders[1].MaskStats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := c.Clients[0].Infer(ctx, "convnet", vec(5, 3), node.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) != 1 || res.Output[0] != 1022 {
		t.Fatalf("output %v, want [1022]", res.Output)
	}
	for i, h := range c.Holders {
		if st := h.MaskStats(); st.Opened != 1 || st.Cached != 1 {
			t.Fatalf("holder %d after the first query: %+v, want the warm's one opened mask set", i, st)
		}
	}
}

// TestWarmReplicated checks the warm session of a replicated model
// (--tolerate 1 over 3 holders): the dealer warms the replica choice a
// client makes with every holder live, so the first query opens no masks;
// and a query sent right after publish, while the warm may be running,
// answers.
func TestWarmReplicated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := nodetest.MakeCluster(ctx, t.TempDir(), nodetest.Config{Holders: 3, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, w := plan.Seed()
	if _, err := c.Clients[0].Publish(ctx, "early", p, w, node.PublishOptions{Holders: 3, Tolerate: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Clients[0].Infer(ctx, "early", vec(5, 3), node.InferOptions{})
	if err != nil || len(res.Output) != 1 || res.Output[0] != 1022 {
		t.Fatalf("a query right after publish: %v, %v", res, err)
	}
	if _, err := c.Clients[0].Publish(ctx, "convnet", p, w, node.PublishOptions{Holders: 3, Tolerate: 1}); err != nil {
		t.Fatal(err)
	}
	opened := func() (sum int64) {
		for _, h := range c.Holders {
			sum += h.MaskStats().Opened
		}
		return sum
	}
	for i := 0; c.Dealer.MaskStats().Warmed < 2; i++ { // both models warmed
		if i == 300 || ctx.Err() != nil {
			t.Fatalf("the dealer has not warmed both models: %+v", c.Dealer.MaskStats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := opened()
	if res, err = c.Clients[0].Infer(ctx, "convnet", vec(5, 3), node.InferOptions{}); err != nil || res.Output[0] != 1022 {
		t.Fatalf("first query: %v, %v", res, err)
	}
	if after := opened(); after != before {
		t.Fatalf("the first query opened %d mask sets", after-before)
	}
}
