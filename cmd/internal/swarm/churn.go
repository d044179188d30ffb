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
	shares [][]int      // each share's holders, by daemon index
	down   []int        // the daemons stopped, in the order they left
}

// churn runs the churn case: before each query, with probability Rate, one
// daemon leaves or a stopped one rejoins. Clear failures are expected while
// more holders than params.tolerate are down; a wrong answer never is, a
// failure with at most tolerate holders down neither, and some answers must
// be right.
func (r *runner) churn(ctx context.Context, s *harness.Swarm, cl *clients, run *Run) error {
	c := &churner{r: r, s: s, cl: cl, run: run, holder: map[int]bool{}, down: []int{},
		rng: rand.New(rand.NewPCG(uint64(r.o.Seed), 0x636875726e))} // "churn"
	c.shares = shareDaemons(run.ModelHolders, run.ModelShares, s.Index)
	for _, hs := range c.shares {
		for _, i := range hs {
			c.holder[i] = true
		}
	}
	run.Churn = &ChurnResult{Tolerate: r.sc.Params.Tolerate}
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
		q.HoldersDown, q.Uncovered = c.holdersDown(), c.uncovered()
		run.Queries = append(run.Queries, q)
		r.logf("churn: query %d (%d holders down): %s %v %.0f ms %s", qi, q.HoldersDown, q.Class, q.Output, q.WallMs, q.Err)
	}
	run.Finish()
	return churnVerdict(run)
}

// churnVerdict is why a finished churn run fails: a wrong answer, a
// failure while no more holders than tolerated were down, or no right
// answer at all.
func churnVerdict(run *Run) error {
	var errs []error
	if run.Counts.Wrong > 0 {
		errs = append(errs, fmt.Errorf("churn: %d wrong answers", run.Counts.Wrong))
	}
	if ch := run.Churn; ch != nil && ch.Within.Failed > 0 {
		errs = append(errs, fmt.Errorf("churn: %d queries failed with at most %d holder(s) down (tolerate %d)", ch.Within.Failed, ch.Tolerate, ch.Tolerate))
	}
	if run.Counts.Right == 0 {
		errs = append(errs, errors.New("churn: no right answer at all"))
	}
	return errors.Join(errs...)
}

// shareDaemons maps each share's holders (indices into holders; none:
// share i on holder i) to daemon indices (index: a peer ID's daemon, -1
// when it is none of the swarm's, then left out).
func shareDaemons(holders []string, shares [][]int, index func(string) int) [][]int {
	if len(shares) == 0 {
		for j := range holders {
			shares = append(shares, []int{j})
		}
	}
	out := make([][]int, len(shares))
	for s, hs := range shares {
		for _, j := range hs {
			if j >= 0 && j < len(holders) {
				if i := index(holders[j]); i >= 0 {
					out[s] = append(out[s], i)
				}
			}
		}
	}
	return out
}

// holdersDown counts the model's holders among the daemons down.
func (c *churner) holdersDown() int {
	n := 0
	for _, i := range c.down {
		if c.holder[i] {
			n++
		}
	}
	return n
}

// uncovered tells whether some share has every holder down (the model
// cannot answer).
func (c *churner) uncovered() bool {
	for _, hs := range c.shares {
		if len(hs) > 0 && !slices.ContainsFunc(hs, func(i int) bool { return !slices.Contains(c.down, i) }) {
			return true
		}
	}
	return false
}

// beyond tells whether query qi is in the phase where more holders than
// tolerated may be down (params.churn.beyond_from).
func (c *churner) beyond(qi int) bool {
	b := c.r.sc.Params.Churn.BeyondFrom
	return c.r.sc.Params.Tolerate > 0 && b > 0 && qi >= b
}

// mayLeave tells whether daemon i (up, not the bootstrap) may leave
// before query qi: with tolerate F > 0, a holder only while fewer than F
// are down, except in the phase beyond tolerance, where only holders do.
func (c *churner) mayLeave(qi, i int) bool {
	switch {
	case c.beyond(qi):
		return c.holder[i]
	case c.r.sc.Params.Tolerate > 0 && c.holder[i] && c.holdersDown() >= c.r.sc.Params.Tolerate:
		return false
	}
	return !c.r.sc.Params.Churn.HoldersOnly || c.holder[i]
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
		if i != 0 && c.mayLeave(qi, i) {
			up = append(up, i)
		}
	}
	// Beyond tolerance, a holder leaves whenever the cap allows (so the
	// phase reaches more than tolerate down); else leave or rejoin by a
	// coin (drawn only then, so a seed gives the events it always gave).
	leave := len(c.down) == 0 || (len(c.down) < ch.MaxDown && len(up) > 0 && (c.beyond(qi) || c.rng.IntN(2) == 0))
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

// rejoin starts a stopped daemon again from its repo dir: any, or beyond
// tolerance a non-holder first (so the holders fill the down slots).
func (c *churner) rejoin(ctx context.Context, qi int) error {
	pick := c.down
	if others := slices.DeleteFunc(slices.Clone(c.down), func(i int) bool { return c.holder[i] }); c.beyond(qi) && len(others) > 0 {
		pick = others
	}
	i := pick[c.rng.IntN(len(pick))]
	k := slices.Index(c.down, i)
	if _, err := c.s.Start(ctx, i); err != nil {
		return fmt.Errorf("churn: rejoin: %w", err)
	}
	c.down = slices.Delete(c.down, k, k+1)
	c.run.Events = append(c.run.Events, Event{BeforeQuery: qi, Kind: "join", Node: i, Holder: c.holder[i]})
	c.r.logf("churn: node%d rejoins (holder %v) before query %d", i, c.holder[i], qi)
	return nil
}
