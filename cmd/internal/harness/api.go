package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths of a daemon's HTTP API.
const (
	PathPeers   = "/api/v0/peers"
	PathMetrics = "/debug/metrics/prometheus"
)

// Caps on what is read from a daemon's HTTP API.
const (
	// APITimeout bounds one request to a daemon's HTTP API.
	APITimeout = 5 * time.Second
	// MaxPeersBody caps an /api/v0/peers answer.
	MaxPeersBody = 4 << 20
	// MaxMetricsBody caps a Prometheus exposition.
	MaxMetricsBody = 8 << 20
)

// StatusError is a daemon API answer with a status other than 200 OK.
type StatusError struct {
	URL    string // host:port and path asked for
	Status string // e.g. "404 Not Found"
	Code   int    // e.g. http.StatusNotFound
	Body   string // the start of the answer's body (maxErrorBody bytes), trimmed
}

// maxErrorBody caps how much of an error answer's body a StatusError keeps.
const maxErrorBody = 512

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("api %s: %s", e.URL, e.Status)
	}
	return fmt.Sprintf("api %s: %s: %s", e.URL, e.Status, e.Body)
}

// Get fetches path from the daemon HTTP API at addr (host:port), reading
// at most maxBody bytes of the answer; each request is capped at
// APITimeout. An answer other than 200 OK is a *StatusError.
func Get(ctx context.Context, addr, path string, maxBody int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, APITimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("api %s%s: %w", addr, path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api %s%s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("api %s%s: read: %w", addr, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{URL: addr + path, Status: resp.Status, Code: resp.StatusCode,
			Body: strings.TrimSpace(string(body[:min(len(body), maxErrorBody)]))}
	}
	return body, nil
}

// PeerInfo is one connected peer as the daemon's API reports it.
type PeerInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs,omitempty"`
}

// DecodePeers parses the daemon API's /api/v0/peers answer.
func DecodePeers(body []byte) ([]PeerInfo, error) {
	var out struct {
		Peers []PeerInfo `json:"peers"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode peers: %w", err)
	}
	return out.Peers, nil
}

// Metric reads one series (name with its labels as exposed, e.g.
// `grid_sessions_active` or `grid_bytes_received_total{protocol="mpc"}`)
// from the Prometheus endpoint of the daemon API at addr; a series not
// exposed reads as 0.
func Metric(ctx context.Context, addr, series string) (float64, error) {
	body, err := Get(ctx, addr, PathMetrics, MaxMetricsBody)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	return ParseMetric(string(body), series)
}

// ParseMetric finds one series (name with its labels, exactly as exposed)
// in a Prometheus text exposition; it is 0 when the series is absent.
func ParseMetric(text, series string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", series, err)
		}
		return v, nil
	}
	return 0, nil
}
