package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus series, on the node's own registry
// (served at /debug/metrics/prometheus), so that several nodes in one
// process do not share counters.
type metrics struct {
	reg *prometheus.Registry

	sessionsStarted *prometheus.CounterVec // by role: client, holder, warm (a holder in a dealer's warm session), dealer, host
	sessionsOK      *prometheus.CounterVec
	sessionsFailed  *prometheus.CounterVec
	sessionsActive  prometheus.Gauge
	rounds          prometheus.Counter
	bytesSent       *prometheus.CounterVec // by protocol
	bytesRecv       *prometheus.CounterVec
	errors          *prometheus.CounterVec // by kind
	busy            prometheus.Counter
	uploads         *prometheus.CounterVec // by result
	damaged         prometheus.Gauge
	missing         prometheus.Gauge
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		sessionsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_sessions_started_total", Help: "Inference sessions started, by this node's role in them.",
		}, []string{"role"}),
		sessionsOK: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_sessions_ok_total", Help: "Inference sessions finished successfully, by role.",
		}, []string{"role"}),
		sessionsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_sessions_failed_total", Help: "Inference sessions that failed, by role.",
		}, []string{"role"}),
		sessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "grid_sessions_active", Help: "Sessions this node currently serves as holder or host.",
		}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "grid_mpc_rounds_total", Help: "MPC communication rounds run as a holder.",
		}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_bytes_sent_total", Help: "Payload bytes sent on grid protocols.",
		}, []string{"protocol"}),
		bytesRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_bytes_received_total", Help: "Payload bytes received on grid protocols.",
		}, []string{"protocol"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_errors_total", Help: "Errors by kind (refusals, peer failures, timeouts, damaged stores).",
		}, []string{"kind"}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "grid_busy_refusals_total", Help: "Sessions refused because MaxSessions were running.",
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_share_uploads_total", Help: "Share uploads received, by result.",
		}, []string{"result"}),
		damaged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "grid_damaged_models", Help: "Stored models refused because their shares failed verification.",
		}),
		missing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "grid_missing_models", Help: "Models whose manifest names this peer as a holder but whose shares it lacks.",
		}),
	}
	reg.MustRegister(m.sessionsStarted, m.sessionsOK, m.sessionsFailed, m.sessionsActive, m.rounds,
		m.bytesSent, m.bytesRecv, m.errors, m.busy, m.uploads, m.damaged, m.missing,
		prometheus.NewGoCollector())
	return m
}

// errorKind classifies an error for the errors metric.
func errorKind(err error) string {
	st := statusFromError(err)
	switch st.Code.String() {
	case "":
		return "internal"
	default:
		return lower(st.Code.String())
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
