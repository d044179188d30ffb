package discovery

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources of a manifest, used as the "source" label of the metrics.
const (
	sourceLocal  = "local"  // Publish or Unpublish on this node
	sourcePubsub = "pubsub" // the gossipsub topic
	sourceSync   = "sync"   // a catalog pulled from a peer
	sourcePush   = "push"   // a manifest pushed by a peer over the sync protocol
	sourceDHT    = "dht"    // a DHT record (Lookup, or a PUT from a peer)
	sourceStore  = "store"  // the local datastore at start
)

// Metrics are the discovery counters, exported to Prometheus. One Metrics
// may be shared by several Discovery instances (a swarm in one process).
type Metrics struct {
	// Accepted counts manifests that changed the registry, by source.
	Accepted *prometheus.CounterVec
	// Refused counts refused manifests by source and reason (too_large,
	// bad_envelope, signer_not_owner, invalid, name_taken, stale_version,
	// registry_full, bad_key).
	Refused *prometheus.CounterVec
	// UnpublishRefused counts unpublish attempts by a non-owner, local
	// (Unpublish with the wrong key) or remote (a tombstone signed by
	// someone other than the name's owner).
	UnpublishRefused prometheus.Counter
	// RepairsAccepted counts repair records added to a chain, by source.
	RepairsAccepted *prometheus.CounterVec
	// RepairsRefused counts refused repair records by source and reason
	// (too_large, bad_repair, conflict, chain_full, behind, stale_version,
	// bad_key).
	RepairsRefused *prometheus.CounterVec
}

// NewMetrics makes the discovery counters and registers them with reg
// (nil: not registered). If counters of the same names are already
// registered there, they are reused, so several instances may share reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "grid", Subsystem: "discovery", Name: "manifests_accepted_total",
			Help: "Manifests accepted into the registry, by source.",
		}, []string{"source"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "grid", Subsystem: "discovery", Name: "manifests_refused_total",
			Help: "Manifests refused, by source and reason.",
		}, []string{"source", "reason"}),
		UnpublishRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "grid", Subsystem: "discovery", Name: "unpublish_refused_total",
			Help: "Unpublish attempts refused because the signer does not own the model.",
		}),
		RepairsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "grid", Subsystem: "discovery", Name: "repairs_accepted_total",
			Help: "Repair records accepted into a model's chain, by source.",
		}, []string{"source"}),
		RepairsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "grid", Subsystem: "discovery", Name: "repairs_refused_total",
			Help: "Repair records refused, by source and reason.",
		}, []string{"source", "reason"}),
	}
	if reg != nil {
		m.Accepted = register(reg, m.Accepted)
		m.Refused = register(reg, m.Refused)
		m.UnpublishRefused = register(reg, m.UnpublishRefused)
		m.RepairsAccepted = register(reg, m.RepairsAccepted)
		m.RepairsRefused = register(reg, m.RepairsRefused)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clashing collector of another type: keep ours unregistered
		// rather than fail; the counters still work.
	}
	return c
}

// reason maps a refusal error to its metric label.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrSignerNotOwner):
		return "signer_not_owner"
	case errors.Is(err, ErrBadEnvelope):
		return "bad_envelope"
	case errors.Is(err, ErrNameTaken), errors.Is(err, ErrNotOwner):
		return "name_taken"
	case errors.Is(err, ErrStaleVersion):
		return "stale_version"
	case errors.Is(err, errRegistryFull):
		return "registry_full"
	case errors.Is(err, errBadKey):
		return "bad_key"
	case errors.Is(err, errRepairBehind):
		return "behind"
	case errors.Is(err, errRepairConflict):
		return "conflict"
	case errors.Is(err, errChainFull):
		return "chain_full"
	case errors.Is(err, ErrBadRepair):
		return "bad_repair"
	case errors.Is(err, ErrInvalidManifest):
		return "invalid"
	default:
		return "other"
	}
}
