package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// clients are the one-shot client identities of a run: the model's owner
// and a user who queries it.
type clients struct {
	r      *runner
	s      *harness.Swarm
	owner  string // repo dirs
	user   string
	models int // manifests published so far

	mu       sync.Mutex
	method   string // how registries are observed, once known
	logTimes bool   // acceptance times came from the daemons' logs
}

// newClients makes the owner's and the user's repos (seeded identities,
// like the daemons').
func (r *runner) newClients(ctx context.Context, s *harness.Swarm) (*clients, error) {
	owner, err := s.NewClient(ctx, "owner")
	if err != nil {
		return nil, fmt.Errorf("owner repo: %w", err)
	}
	user, err := s.NewClient(ctx, "user")
	if err != nil {
		return nil, fmt.Errorf("user repo: %w", err)
	}
	return &clients{r: r, s: s, owner: owner, user: user}, nil
}

// grid runs one client command with the given repo, bootstrapped from
// daemon 0, bounded by timeout (also passed as --timeout).
func (cl *clients) grid(ctx context.Context, repo string, timeout time.Duration, args ...string) (harness.Result, time.Duration, error) {
	args = append(args, "--repo", repo, "--bootstrap", cl.s.Bootstrap(), "--timeout", timeout.String())
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	t0 := time.Now()
	res, err := harness.Run(ctx, cl.r.o.Grid, nil, args...)
	return res, time.Since(t0), err
}

// publish publishes the scenario's model under name (MPC mode: over
// params.holders, tolerating params.tolerate down), then waits until
// every running daemon lists it; it fills PublishMs, DiscoverMs and
// ModelShares and returns the holders' peer IDs.
func (cl *clients) publish(ctx context.Context, name string, plain bool, run *Run) ([]string, error) {
	args := []string{"publish", cl.r.model, "--id", name, "--json", "--quiet"}
	if plain {
		args = append(args, "--plain")
	} else {
		args = append(args, "--holders", strconv.Itoa(cl.r.sc.Params.Holders))
		if f := cl.r.sc.Params.Tolerate; f > 0 {
			args = append(args, "--tolerate", strconv.Itoa(f))
		}
	}
	started := time.Now()
	res, took, err := cl.grid(ctx, cl.owner, cl.r.sc.Timeouts.Publish.D(), args...)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", name, err)
	}
	if res.Code != 0 {
		return nil, fmt.Errorf("publish %s: exit %d: %s", name, res.Code, lastLine(res.Stderr))
	}
	var m struct {
		ID      string   `json:"id"`
		Holders []string `json:"holders"`
		Shares  [][]int  `json:"shares"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &m); err != nil || m.ID != name {
		return nil, fmt.Errorf("publish %s: unexpected output %q", name, res.Stdout)
	}
	run.ModelShares = m.Shares
	cl.models++
	run.PublishMs = ms(took)
	cl.r.logf("published %s (%s) in %.0f ms; holders %s", name, map[bool]string{true: "plain", false: "mpc"}[plain],
		run.PublishMs, strings.Join(names(cl.s, m.Holders), ","))
	cl.mu.Lock()
	cl.logTimes = false
	cl.mu.Unlock()
	last, method, err := cl.waitListed(ctx, name, started)
	if err != nil {
		return nil, err
	}
	if method != "" {
		run.DiscoverMs = ms(last.Sub(started))
		run.DiscoverMethod = method
		cl.r.logf("every daemon lists %s %.0f ms after the publish started (observed by %s)", name, run.DiscoverMs, method)
	}
	return m.Holders, nil
}

// names renders peer IDs as member names (node3), or the ID itself.
func names(s *harness.Swarm, ids []string) []string {
	var out []string
	for _, id := range ids {
		if i := s.Index(id); i >= 0 {
			out = append(out, fmt.Sprintf("node%d", i))
		} else {
			out = append(out, id)
		}
	}
	return out
}

// query runs one `grid infer` and classifies its answer. Its error is set
// only when the run as a whole must stop (ctx ended or the binary cannot
// run); a failing query is a Query of class failed.
func (cl *clients) query(ctx context.Context, model, mode string, index int) (Query, error) {
	p := cl.r.sc.Params
	vals := make([]string, len(p.Values))
	for i, v := range p.Values {
		vals[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	args := []string{"infer", model, "--values", strings.Join(vals, ","), "--json"}
	if mode == "plain" {
		args = append(args, "--plain")
	}
	res, took, err := cl.grid(ctx, cl.user, cl.r.sc.Timeouts.Query.D(), args...)
	q := Query{Index: index, Mode: mode, ExitCode: res.Code, WallMs: ms(took)}
	if err != nil {
		if ctx.Err() != nil {
			return q, fmt.Errorf("query %d: %w", index, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			q.Class, q.ExitCode, q.Err = ClassFailed, -1, "no answer within the query timeout"
			return q, nil
		}
		return q, fmt.Errorf("query %d: %w", index, err)
	}
	if res.Code != 0 {
		q.Class, q.Err = ClassFailed, lastLine(res.Stderr)
		return q, nil
	}
	var v struct {
		Output   []float64 `json:"output"`
		Rounds   int       `json:"rounds"`
		Sent     int64     `json:"bytes_sent"`
		Recv     int64     `json:"bytes_recv"`
		OnlineMs float64   `json:"online_ms"`
		TotalMs  float64   `json:"total_ms"`
		Dealer   string    `json:"dealer"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		q.Class, q.Err = ClassWrong, fmt.Sprintf("exit 0 without a readable answer: %v: %q", err, res.Stdout)
		return q, nil
	}
	q.Output, q.Rounds, q.Sent, q.Recv, q.OnlineMs, q.TotalMs, q.Dealer = v.Output, v.Rounds, v.Sent, v.Recv, v.OnlineMs, v.TotalMs, v.Dealer
	q.Class = Classify(0, v.Output, p.Expect, p.Tolerance)
	if q.Class == ClassWrong {
		q.Err = fmt.Sprintf("answer %v, want %v within %g", v.Output, p.Expect, p.Tolerance)
	}
	return q, nil
}
