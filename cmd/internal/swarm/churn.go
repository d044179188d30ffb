package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// churner draws and applies the churn case's events: arrivals of new
// daemons, leaves (SIGTERM), crashes (SIGKILL) and rejoins.
type churner struct {
	r      *runner
	s      *harness.Swarm
	cl     *clients
	run    *Run
	rng    *rand.Rand
	holder map[int]bool // the model's holders, by daemon index
	down   []int        // the daemons stopped, in the order they left
}

// churn runs the churn case: before each query, with probability Rate, one
// daemon leaves or a stopped one rejoins. Clear failures are expected while
// a holder is down; a wrong answer never is, and some answers must be right.
func (r *runner) churn(ctx context.Context, s *harness.Swarm, cl *clients, run *Run) error {
	c := &churner{r: r, s: s, cl: cl, run: run, holder: map[int]bool{}, down: []int{},
		rng: rand.New(rand.NewPCG(uint64(r.o.Seed), 0x636875726e))} // "churn"
	for _, id := range run.ModelHolders {
		if i := s.Index(id); i >= 0 {
			c.holder[i] = true
		}
	}
	for qi := range r.sc.Params.Queries {
		if err := c.event(ctx, qi); err != nil {
			return err
		}
		q, err := cl.query(ctx, r.sc.Params.Model, "mpc", qi)
		if err != nil {
			return err
		}
		q.Down = slices.Clone(c.down)
		slices.Sort(q.Down)
		run.Queries = append(run.Queries, q)
		r.logf("churn: query %d: %s %v %.0f ms %s", qi, q.Class, q.Output, q.WallMs, q.Err)
	}
	run.Finish()
	if run.Counts.Wrong > 0 {
		return fmt.Errorf("churn: %d wrong answers", run.Counts.Wrong)
	}
	if run.Counts.Right == 0 {
		return errors.New("churn: no right answer at all")
	}
	return nil
}

// event draws whether an event happens before query qi, and which, and
// applies it. The draws are in a fixed order, so a seed gives the same
// events.
func (c *churner) event(ctx context.Context, qi int) error {
	ch := c.r.sc.Params.Churn
	if c.rng.Float64() >= ch.Rate {
		return nil
	}
	if c.rng.Float64() < ch.Arrive && c.s.Len() < MaxInstances {
		return c.arrive(ctx, qi)
	}
	var up []int
	for _, i := range c.s.Up() {
		if i != 0 && (!ch.HoldersOnly || c.holder[i]) {
			up = append(up, i)
		}
	}
	leave := len(c.down) == 0 || (len(c.down) < ch.MaxDown && len(up) > 0 && c.rng.IntN(2) == 0)
	switch {
	case leave && len(up) > 0:
		c.leave(qi, up[c.rng.IntN(len(up))])
	case len(c.down) > 0:
		return c.rejoin(ctx, qi)
	}
	return nil
}

// arrive starts a brand-new daemon and waits until it lists the model
// published before it existed.
func (c *churner) arrive(ctx context.Context, qi int) error {
	t0 := time.Now()
	i, d, err := c.s.Add(ctx)
	if err != nil {
		return fmt.Errorf("churn: arrival: %w", err)
	}
	ev := Event{BeforeQuery: qi, Kind: "arrive", Node: i}
	at, err := c.cl.waitOne(ctx, d, c.r.sc.Params.Model, t0)
	if err != nil {
		return fmt.Errorf("churn: new node%d: %w", i, err)
	}
	if !at.IsZero() {
		ev.CatchUpMs = ms(at.Sub(t0))
	}
	c.run.Events = append(c.run.Events, ev)
	c.r.logf("churn: new node%d arrives before query %d and lists %s %.0f ms after its start", i, qi, c.r.sc.Params.Model, ev.CatchUpMs)
	return nil
}

// leave stops daemon i: SIGKILL (a crash) for a Crash fraction of the
// leaves, else SIGTERM (an unclean exit is kept in the swarm's StopErrors).
func (c *churner) leave(qi, i int) {
	kind := "leave"
	if c.rng.Float64() < c.r.sc.Params.Churn.Crash {
		kind = "crash"
		c.s.Kill(i)
	} else {
		_ = c.s.Stop(i)
	}
	c.down = append(c.down, i)
	c.run.Events = append(c.run.Events, Event{BeforeQuery: qi, Kind: kind, Node: i, Holder: c.holder[i]})
	c.r.logf("churn: node%d %s (holder %v) before query %d", i, map[string]string{"leave": "leaves", "crash": "crashes"}[kind], c.holder[i], qi)
}

// rejoin starts a stopped daemon again from its repo dir.
func (c *churner) rejoin(ctx context.Context, qi int) error {
	k := c.rng.IntN(len(c.down))
	i := c.down[k]
	if _, err := c.s.Start(ctx, i); err != nil {
		return fmt.Errorf("churn: rejoin: %w", err)
	}
	c.down = slices.Delete(c.down, k, k+1)
	c.run.Events = append(c.run.Events, Event{BeforeQuery: qi, Kind: "join", Node: i, Holder: c.holder[i]})
	c.r.logf("churn: node%d rejoins (holder %v) before query %d", i, c.holder[i], qi)
	return nil
}
