package swarm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// How a daemon's model registry is observed, in order of preference.
const (
	// methodAPI: the daemon's /api/v0/models lists the model.
	methodAPI = "api"
	// methodMetrics: the daemon's Prometheus counter of manifests accepted
	// into its registry has reached the number published in the swarm.
	methodMetrics = "metrics"
	// methodLog: the daemon's log (stderr, slog text format) has a
	// "manifest accepted" line for the model, whose time is used.
	methodLog = "log"
)

const (
	pathModels  = "/api/v0/models"
	pathMetrics = harness.PathMetrics
	// metricAccepted counts manifests that changed a daemon's registry.
	metricAccepted = "grid_discovery_manifests_accepted_total"
	maxAPIBody     = harness.MaxMetricsBody
)

// errNotObservable means the daemon offers neither way to see its registry.
var errNotObservable = errors.New("daemon has neither " + pathModels + " nor the " + metricAccepted + " metric")

// listed reports whether the daemon whose HTTP API is at api lists the
// model name (want is the number of manifests published in the swarm so
// far, for the metrics method), and how that was observed.
func listed(ctx context.Context, api, name string, want int) (bool, string, error) {
	if api == "" {
		return false, "", fmt.Errorf("%w: the daemon has no HTTP API", errNotObservable)
	}
	body, err := harness.Get(ctx, api, pathModels, maxAPIBody)
	switch {
	case err == nil:
		ok, perr := modelsListName(body, name)
		if perr != nil {
			return false, methodAPI, fmt.Errorf("daemon %s: %w", api, perr)
		}
		return ok, methodAPI, nil
	case !isNotFound(err):
		return false, methodAPI, err
	}
	body, err = harness.Get(ctx, api, pathMetrics, maxAPIBody)
	if err != nil {
		return false, methodMetrics, err
	}
	n, found, err := sumMetric(body, metricAccepted)
	if err != nil {
		return false, methodMetrics, fmt.Errorf("daemon %s metrics: %w", api, err)
	}
	if !found {
		return false, "", errNotObservable
	}
	return n >= float64(want), methodMetrics, nil
}

// isNotFound reports whether err is an HTTP 404 from the daemon's API.
func isNotFound(err error) bool {
	var se *harness.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// modelsListName reports whether a models listing (JSON: a list of models,
// or an object holding one, each model an object with "id" or "ID") has a
// model called name.
func modelsListName(body []byte, name string) (bool, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return false, fmt.Errorf("decode models list: %w", err)
	}
	return hasID(v, name, 0), nil
}

// hasID walks decoded JSON (depth-bounded) for an object whose id is name.
func hasID(v any, name string, depth int) bool {
	if depth > 8 {
		return false
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if hasID(e, name, depth+1) {
				return true
			}
		}
	case map[string]any:
		for _, k := range []string{"id", "ID"} {
			if s, ok := x[k].(string); ok && s == name {
				return true
			}
		}
		for _, e := range x {
			if hasID(e, name, depth+1) {
				return true
			}
		}
	}
	return false
}

// sumMetric sums every sample of the Prometheus text-format metric called
// name (all label sets); found is false when there is no such sample.
func sumMetric(body []byte, name string) (sum float64, found bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue // another metric with this prefix
		}
		if rest != "" && rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, false, fmt.Errorf("metric %s: unterminated labels in %q", name, line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false, fmt.Errorf("metric %s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || math.IsNaN(v) {
			return 0, false, fmt.Errorf("metric %s: bad value in %q", name, line)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("metric %s: %w", name, err)
	}
	return sum, found, nil
}

// maxLogScan caps how much of a daemon's log logAccepted reads (its end).
const maxLogScan = 16 << 20

// logAccepted scans a daemon's log for the first line, at or after since,
// that records the acceptance of manifest name into its registry:
//
//	time=2026-11-27T09:12:47.322Z level=INFO msg="manifest accepted" ... id=NAME ...
//
// and returns that line's time.
func logAccepted(path, name string, since time.Time) (time.Time, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("daemon log: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxLogScan {
		if _, err := f.Seek(st.Size()-maxLogScan, io.SeekStart); err != nil {
			return time.Time{}, false, fmt.Errorf("daemon log: %w", err)
		}
	}
	br := bufio.NewReaderSize(f, 64<<10)
	long := false // inside a line longer than the buffer: skipped, not ours
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			long = true
			continue
		case long:
			long = false
		default:
			if at, ok := acceptedLine(string(line), name); ok && !at.Before(since.Truncate(time.Millisecond)) {
				return at, true, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return time.Time{}, false, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return time.Time{}, false, fmt.Errorf("daemon log %s: %w", path, err)
		}
	}
}

// acceptedLine parses one slog text line: true with its time if it says
// manifest name was accepted.
func acceptedLine(line, name string) (time.Time, bool) {
	if !strings.Contains(line, `msg="manifest accepted"`) {
		return time.Time{}, false
	}
	var at time.Time
	var id string
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return time.Time{}, false
			}
			at = t
		case "id":
			if id == "" {
				id = strings.Trim(v, `"`)
			}
		}
	}
	if at.IsZero() || id != name {
		return time.Time{}, false
	}
	return at, true
}

// pollParallel bounds the concurrent API requests of one poll round.
const pollParallel = 8

// waitListed polls every running daemon (a few at a time) until each lists
// the model published at since. It returns when the last daemon accepted
// it (its logged time where the log has it, else the poll's time) and how
// that was observed ("" when the daemons offer no way to see it).
func (cl *clients) waitListed(ctx context.Context, name string, since time.Time) (time.Time, string, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.r.sc.Timeouts.Discover.D())
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var mu sync.Mutex
	seen := map[int]time.Time{}
	for {
		var (
			missing       []string
			notObservable error
			wg            sync.WaitGroup
		)
		sem := make(chan struct{}, pollParallel)
		for _, i := range cl.s.Up() {
			d := cl.s.Daemon(i)
			mu.Lock()
			done := !seen[i].IsZero()
			mu.Unlock()
			if d == nil || done {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ok, at, err := cl.observe(ctx, d, name, since)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, errNotObservable):
					notObservable = err
				case ok:
					seen[i] = at
				default:
					missing = append(missing, fmt.Sprintf("node%d", i))
				}
			})
		}
		wg.Wait()
		if notObservable != nil {
			cl.r.logf("cannot observe the daemons' model registries (%v): discovery time not measured", notObservable)
			return time.Time{}, "", nil
		}
		if len(missing) == 0 {
			var last time.Time
			for _, t := range seen {
				if t.After(last) {
					last = t
				}
			}
			return last, cl.methodName(), nil
		}
		select {
		case <-ctx.Done():
			slices.Sort(missing)
			return time.Time{}, cl.methodName(), fmt.Errorf("manifest %s not listed by %v after %s: %w", name, missing, cl.r.sc.Timeouts.Discover.D(), ctx.Err())
		case <-tick.C:
		}
	}
}

// waitOne waits until daemon d lists the model, polled like waitListed,
// and returns when it accepted it (zero if not observable).
func (cl *clients) waitOne(ctx context.Context, d *harness.Daemon, name string, since time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.r.sc.Timeouts.Discover.D())
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, at, err := cl.observe(ctx, d, name, since)
		if errors.Is(err, errNotObservable) {
			return time.Time{}, nil
		}
		if ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("manifest %s not listed after %s: %w", name, cl.r.sc.Timeouts.Discover.D(), ctx.Err())
		case <-tick.C:
		}
	}
}

// observe reports whether daemon d lists model name, and since when. It
// asks the daemon's /api/v0/models, else its Prometheus counter of
// accepted manifests; once either says yes, the time is taken from the
// daemon's "manifest accepted" log line when there is one (exact, unlike
// the poll's). A daemon with neither endpoint is observed through its log
// alone. Safe for concurrent use.
func (cl *clients) observe(ctx context.Context, d *harness.Daemon, name string, since time.Time) (bool, time.Time, error) {
	cl.mu.Lock()
	how := cl.method
	cl.mu.Unlock()
	if how != methodLog {
		ok, how, err := listed(ctx, d.API, name, cl.models)
		if errors.Is(err, errNotObservable) {
			cl.setMethod(methodLog)
			return cl.observe(ctx, d, name, since)
		}
		if err != nil || !ok {
			return false, time.Time{}, err
		}
		polled := time.Now()
		cl.setMethod(how)
		if at, ok, lerr := logAccepted(d.LogPath(), name, since); lerr == nil && ok && at.Before(polled) {
			cl.setLogTimes()
			return true, at, nil
		}
		return true, polled, nil
	}
	at, ok, err := logAccepted(d.LogPath(), name, since)
	if err != nil {
		return false, time.Time{}, err
	}
	return ok, at, nil
}

func (cl *clients) setMethod(m string) {
	cl.mu.Lock()
	cl.method = m
	cl.mu.Unlock()
}

func (cl *clients) setLogTimes() {
	cl.mu.Lock()
	cl.logTimes = true
	cl.mu.Unlock()
}

// methodName describes how discovery was observed, e.g. "metrics+log
// times".
func (cl *clients) methodName() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.logTimes && cl.method != methodLog {
		return cl.method + "+log times"
	}
	return cl.method
}
