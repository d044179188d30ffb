package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// protocols are the labels of grid_bytes_{sent,received}_total: session
// requests, dealer bundles and the holders' MPC traffic.
var protocols = []string{"infer", "dealer", "mpc"}

// traffic reads the bytes each daemon (the dealer, then the holders) sent
// and received on grid's protocols so far.
func traffic(ctx context.Context, s *harness.Swarm, holders int) ([]Bytes, error) {
	out := make([]Bytes, holders+1)
	for i := range out {
		for _, p := range protocols {
			sent, err := s.Metric(ctx, i, fmt.Sprintf(`grid_bytes_sent_total{protocol=%q}`, p))
			if err != nil {
				return nil, err
			}
			recv, err := s.Metric(ctx, i, fmt.Sprintf(`grid_bytes_received_total{protocol=%q}`, p))
			if err != nil {
				return nil, err
			}
			out[i].Sent += sent
			out[i].Recv += recv
		}
	}
	return out, nil
}

// holderSum adds a series over the holders (daemons 1..holders); a daemon
// that does not answer counts 0.
func holderSum(ctx context.Context, s *harness.Swarm, holders int, series string) float64 {
	var sum float64
	for i := 1; i <= holders; i++ {
		v, _ := s.Metric(ctx, i, series)
		sum += v
	}
	return sum
}

// peakRSS is a process's peak resident set (VmHWM) in KiB, 0 if unknown.
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// loadAvg is the 1-minute load average, 0 if unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
