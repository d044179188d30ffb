package swarm

import (
	"fmt"
	"io"
)

// ChurnResult splits a churn run's queries by how many of the model's
// holders were down during each: at most Tolerate (the model must answer:
// a failure there fails the run) or more (clear failures are expected).
type ChurnResult struct {
	// Tolerate is the model's --tolerate F.
	Tolerate int `json:"tolerate"`
	// Within counts the queries with at most Tolerate holders down.
	Within Counts `json:"within_tolerance"`
	// Beyond counts the queries with more than Tolerate holders down.
	Beyond Counts `json:"beyond_tolerance"`
	// Uncovered is how many queries ran while some share had every holder
	// down.
	Uncovered int `json:"share_uncovered"`
	// LatencyAllUp and LatencyHolderDown are the client-reported total
	// latency of the right answers with no holder down and with at least
	// one down, ms; WallAllUp and WallHolderDown the same answers' `grid
	// infer` wall times.
	LatencyAllUp      Stats `json:"latency_all_up_ms"`
	LatencyHolderDown Stats `json:"latency_holder_down_ms"`
	WallAllUp         Stats `json:"wall_all_up_ms"`
	WallHolderDown    Stats `json:"wall_holder_down_ms"`
}

// finish fills the split from the run's queries.
func (c *ChurnResult) finish(qs []Query) {
	*c = ChurnResult{Tolerate: c.Tolerate}
	var total, wall [2][]float64 // [0]: all up, [1]: a holder down
	for _, q := range qs {
		counts := &c.Within
		if q.HoldersDown > c.Tolerate {
			counts = &c.Beyond
		}
		if q.Uncovered {
			c.Uncovered++
		}
		switch q.Class {
		case ClassRight:
			counts.Right++
			k := min(q.HoldersDown, 1)
			total[k] = append(total[k], q.TotalMs)
			wall[k] = append(wall[k], q.WallMs)
		case ClassFailed:
			counts.Failed++
		default:
			counts.Wrong++
		}
	}
	c.LatencyAllUp, c.LatencyHolderDown = Summarize(total[0]), Summarize(total[1])
	c.WallAllUp, c.WallHolderDown = Summarize(wall[0]), Summarize(wall[1])
}

// writeLine prints the split under the summary table: counts within and
// beyond tolerance, and the right answers' latency with all holders up and
// with one down.
func (c *ChurnResult) writeLine(w io.Writer) {
	fmt.Fprintf(w, "churn, tolerate %d: <= %d holders down: %d right, %d failed, %d wrong; > %d down: %d right, %d failed, %d wrong (%d with a share uncovered)\n",
		c.Tolerate, c.Tolerate, c.Within.Right, c.Within.Failed, c.Within.Wrong,
		c.Tolerate, c.Beyond.Right, c.Beyond.Failed, c.Beyond.Wrong, c.Uncovered)
	fmt.Fprintf(w, "churn, right answers: all holders up p50 %.1f ms (wall %.0f ms, n=%d); a holder down p50 %.1f ms (wall %.0f ms, n=%d)\n",
		c.LatencyAllUp.P50, c.WallAllUp.P50, c.LatencyAllUp.N, c.LatencyHolderDown.P50, c.WallHolderDown.P50, c.LatencyHolderDown.N)
}
