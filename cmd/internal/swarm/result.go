package swarm

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Classes of a query's outcome.
const (
	// ClassRight is an answer within the tolerance of the expected output.
	ClassRight = "right"
	// ClassFailed is a clear failure: a non-zero exit with an error message
	// and no answer.
	ClassFailed = "failed"
	// ClassWrong is an answer outside the tolerance, or an exit status of 0
	// without a readable answer. A correct system never gives one.
	ClassWrong = "wrong"
)

// Result is what one scenario run produced; it is written as JSON to
// OUT/result.json.
type Result struct {
	Plan        string    `json:"plan"`
	Case        string    `json:"case"`
	Scenario    string    `json:"scenario"` // the scenario file
	Description string    `json:"description,omitempty"`
	Seed        int64     `json:"seed"`
	Started     time.Time `json:"started"`
	ElapsedMs   float64   `json:"elapsed_ms"`
	Host        Host      `json:"host"`
	Runs        []*Run    `json:"runs"`
	// Pass is true when every run passed its case's checks.
	Pass bool `json:"pass"`
	// Error is the first failure, if any.
	Error string `json:"error,omitempty"`
}

// Host describes the machine a result was measured on.
type Host struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	NumCPU    int    `json:"num_cpu"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
	// LoadAvg is /proc/loadavg's 1-minute load when the run started: the
	// figures of a run on a busy machine are not comparable with an idle one.
	LoadAvg float64 `json:"load_avg_1m"`
}

// ThisHost describes the current machine.
func ThisHost() Host {
	h := Host{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			h.LoadAvg, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return h
}

// Run is one swarm of one size (and, for wan, one RTT).
type Run struct {
	Nodes   int `json:"nodes"`
	Holders int `json:"holders"`
	// Tolerate is the model's --tolerate (holders that may be down).
	Tolerate int     `json:"tolerate"`
	RTTMs    float64 `json:"rtt_ms"`
	// ReadyMs is the time from starting the first daemon until every daemon
	// had printed its ready line and was connected to another.
	ReadyMs float64 `json:"ready_ms"`
	// PublishMs is the wall time of `grid publish`.
	PublishMs float64 `json:"publish_ms"`
	// DiscoverMs is the time from the end of the publish until every daemon
	// listed the new manifest.
	DiscoverMs float64 `json:"discover_ms"`
	// DiscoverMethod is how the daemons' registries were observed: "api"
	// (/api/v0/models), "metrics" (the accepted-manifests counter) or "log"
	// (the daemons' logs), with "+log times" when the acceptance times came
	// from the logs; empty when they could not be observed.
	DiscoverMethod string `json:"discover_method,omitempty"`
	// ModelHolders are the peer IDs of the published model's holders.
	ModelHolders []string `json:"model_holders,omitempty"`
	// ModelShares are, with tolerate > 0, each share's holders (indices
	// into ModelHolders), as the publish reported them.
	ModelShares [][]int `json:"model_shares,omitempty"`
	Queries     []Query `json:"queries"`
	// Latency is the client-reported total latency of the right MPC
	// answers, ms.
	Latency Stats `json:"latency_ms"`
	// Online is the client-reported online-phase latency of the right MPC
	// answers, ms.
	Online Stats `json:"online_ms"`
	// Wall is the wall time of the `grid infer` processes (start-up, joining
	// the DHT, lookup and the query) of the right MPC answers, ms.
	Wall Stats `json:"wall_ms"`
	// Plain is the client-reported total latency of the right plain-mode
	// answers, ms.
	Plain Stats `json:"plain_latency_ms"`
	// Rounds is the number of communication rounds of a query (the most seen).
	Rounds int `json:"rounds"`
	// RSSKiB are the daemons' resident set sizes after the queries, KiB.
	RSSKiB []int64 `json:"rss_kib,omitempty"`
	// RSS summarises RSSKiB.
	RSS    Stats   `json:"rss_stats_kib"`
	Counts Counts  `json:"counts"`
	Events []Event `json:"events,omitempty"`
	// Churn splits a churn run's queries by the holders down.
	Churn *ChurnResult `json:"churn,omitempty"`
	// StopErrors lists daemons that did not exit cleanly on SIGTERM.
	StopErrors []string `json:"stop_errors,omitempty"`
	// Error is why the run failed its checks, if it did.
	Error string `json:"error,omitempty"`
}

// Query is one `grid infer` call.
type Query struct {
	Index    int       `json:"index"`
	Mode     string    `json:"mode"` // "mpc" or "plain"
	Class    string    `json:"class"`
	Output   []float64 `json:"output,omitempty"`
	ExitCode int       `json:"exit_code"`
	Err      string    `json:"error,omitempty"`
	TotalMs  float64   `json:"total_ms"`
	OnlineMs float64   `json:"online_ms"`
	WallMs   float64   `json:"wall_ms"`
	Rounds   int       `json:"rounds"`
	Sent     int64     `json:"bytes_sent"`
	Recv     int64     `json:"bytes_recv"`
	Dealer   string    `json:"dealer,omitempty"`
	// Down lists the daemons (by index) that were stopped during the query.
	Down []int `json:"down,omitempty"`
	// HoldersDown is how many of the model's holders were among Down
	// (churn).
	HoldersDown int `json:"holders_down,omitempty"`
	// Uncovered tells that some share had every holder down (churn): the
	// model could not answer.
	Uncovered bool `json:"share_uncovered,omitempty"`
}

// Counts tallies query outcomes.
type Counts struct {
	Right  int `json:"right"`
	Failed int `json:"failed"`
	Wrong  int `json:"wrong"`
}

// Event is a churn event before a query: a daemon left, crashed, rejoined,
// or a new one arrived.
type Event struct {
	BeforeQuery int    `json:"before_query"`
	Kind        string `json:"kind"` // "leave" (SIGTERM), "crash" (SIGKILL), "join" (restart) or "arrive" (new daemon)
	Node        int    `json:"node"`
	Holder      bool   `json:"holder"`
	// CatchUpMs is, for an arrival, the time from its start until it
	// listed the model published before it existed.
	CatchUpMs float64 `json:"catch_up_ms,omitempty"`
}

// Stats summarises a sample.
type Stats struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Summarize computes Stats of xs (nearest-rank percentiles). An empty sample
// gives the zero Stats.
func Summarize(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Stats{N: len(s), Min: s[0], P50: rank(0.5), P90: rank(0.9), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}

// Classify compares an answer with the expected output. A non-zero exit is a
// clear failure; exit 0 with an output of the wrong length or outside the
// tolerance is wrong.
func Classify(exitCode int, out, expect []float64, tol float64) string {
	if exitCode != 0 {
		return ClassFailed
	}
	if len(out) != len(expect) {
		return ClassWrong
	}
	for i := range out {
		if math.IsNaN(out[i]) || math.Abs(out[i]-expect[i]) > tol {
			return ClassWrong
		}
	}
	return ClassRight
}

// Finish fills a run's summaries (counts, latency stats, rounds, RSS) from
// its queries and RSS sample.
func (r *Run) Finish() {
	r.Counts = Counts{}
	var total, online, wall, plain []float64
	for _, q := range r.Queries {
		switch q.Class {
		case ClassRight:
			r.Counts.Right++
			if q.Mode != "mpc" {
				plain = append(plain, q.TotalMs)
				continue
			}
			total = append(total, q.TotalMs)
			online = append(online, q.OnlineMs)
			wall = append(wall, q.WallMs)
			r.Rounds = max(r.Rounds, q.Rounds)
		case ClassFailed:
			r.Counts.Failed++
		default:
			r.Counts.Wrong++
		}
	}
	r.Latency, r.Online, r.Wall, r.Plain = Summarize(total), Summarize(online), Summarize(wall), Summarize(plain)
	rss := make([]float64, len(r.RSSKiB))
	for i, v := range r.RSSKiB {
		rss[i] = float64(v)
	}
	r.RSS = Summarize(rss)
	if r.Churn != nil {
		r.Churn.finish(r.Queries)
	}
}

// WriteJSON writes the result to dir/result.json.
func (res *Result) WriteJSON(dir string) (string, error) {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode result: %w", err)
	}
	path := filepath.Join(dir, "result.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write result: %w", err)
	}
	return path, nil
}

// WriteTable prints the summary table, one line per run.
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "nodes\tholders\trtt ms\tready ms\tpublish ms\tdiscover ms\tq p50 ms\tq p90 ms\tonline p50\twall p50 ms\trounds\trss p50 MiB\trss max MiB\tright\tfailed\twrong\tanswer\t\n")
	for _, r := range res.Runs {
		answer := "-"
		for _, q := range r.Queries {
			if q.Class == ClassRight {
				answer = fmt.Sprint(q.Output)
				break
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%s\t\n",
			r.Nodes, r.Holders, r.RTTMs, r.ReadyMs, r.PublishMs, r.DiscoverMs,
			r.Latency.P50, r.Latency.P90, r.Online.P50, r.Wall.P50, r.Rounds,
			r.RSS.P50/1024, r.RSS.Max/1024, r.Counts.Right, r.Counts.Failed, r.Counts.Wrong, answer)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range res.Runs {
		if r.Churn != nil {
			r.Churn.writeLine(w)
		}
	}
	status := "PASS"
	if !res.Pass {
		status = "FAIL: " + res.Error
	}
	_, err := fmt.Fprintf(w, "%s/%s seed=%d elapsed=%.1fs load=%.1f %s\n", res.Plan, res.Case, res.Seed, res.ElapsedMs/1000, res.Host.LoadAvg, status)
	return err
}
