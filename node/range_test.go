package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// TestRangeSafety checks the client's two range checks: a value beyond the
// owner's declared input range is refused before anything is sent, and a
// result beyond the engine's safe range (a wrapped computation: the seed
// model at x = [1e9, 3] needs 2e9 > 2^30) is an ErrOverflow, never a wrong
// number.
func TestRangeSafety(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	p, w := plan.Seed()
	if _, err := s.client.Publish(ctx, "ranged", p, w, PublishOptions{Holders: 2, InputRange: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Publish(ctx, "open", p, w, PublishOptions{Holders: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Infer(ctx, "ranged", vec(1000, 3), InferOptions{}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("beyond the declared range: err = %v, want ErrBadInput", err)
	}
	res, err := s.client.Infer(ctx, "ranged", vec(5, 3), InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, res, 1022)
	for range 3 { // the wrapped value depends on the masks: every draw is caught
		if res, err := s.client.Infer(ctx, "open", vec(1e9, 3), InferOptions{}); !errors.Is(err, fixed.ErrOverflow) {
			t.Fatalf("overflowing query: result %v, err = %v; want ErrOverflow", res, err)
		}
	}
}
