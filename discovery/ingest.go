package discovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// This file holds the intake of manifests from every source: loading the
// datastore at start, accepting a verified manifest into the registry, and
// logging and counting refusals.

// load fills the registry from the datastore, verifying every envelope.
func (d *Discovery) load(ctx context.Context) error {
	items, err := d.reg.loadStored(ctx, registryPrefix)
	for _, it := range items {
		m, oerr := Open(it.env)
		if oerr != nil {
			d.refused(sourceStore, "", nil, fmt.Errorf("stored %s: %w", it.key, oerr))
			continue
		}
		if it.key != registryPrefix.ChildString(m.ID).String() {
			d.refused(sourceStore, "", m, fmt.Errorf("stored under %s: %w", it.key, errBadKey))
			continue
		}
		_, _ = d.accept(ctx, sourceStore, "", m, it.env)
	}
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	return d.loadRepairs(ctx)
}

// accept applies a verified manifest to the registry, logging and counting
// the outcome.
func (d *Discovery) accept(ctx context.Context, source string, from peer.ID, m *Manifest, env []byte) (verdict, error) {
	v, err := d.reg.apply(ctx, m, env)
	switch v {
	case verdictAccept:
		d.metrics.Accepted.WithLabelValues(source).Inc()
		d.log.Info("manifest accepted", "id", m.ID, "owner", m.Owner, "version", m.Version,
			"deleted", m.Deleted, "source", source, "from", from)
		d.notifyWatchers()
	case verdictRefuse:
		d.refused(source, from, m, err)
	}
	return v, err
}

// ingest opens env and accepts it.
func (d *Discovery) ingest(ctx context.Context, source string, from peer.ID, env []byte) (verdict, error) {
	m, err := Open(env)
	if err != nil {
		d.refused(source, from, nil, err)
		return verdictRefuse, err
	}
	return d.accept(ctx, source, from, m, env)
}

// refused logs and counts one refusal. A peer that is merely behind (an
// older version in a catalog or DHT answer) is not an attack: that is
// logged at Debug and not counted.
func (d *Discovery) refused(source string, from peer.ID, m *Manifest, err error) {
	attrs := []any{"source", source, "from", from, "reason", reason(err), "err", err}
	if m != nil {
		attrs = append(attrs, "id", m.ID, "owner", m.Owner, "version", m.Version)
	}
	if errors.Is(err, ErrStaleVersion) && (source == sourceSync || source == sourceDHT) {
		d.log.Debug("older manifest ignored", attrs...)
		return
	}
	d.metrics.Refused.WithLabelValues(source, reason(err)).Inc()
	if m != nil && m.Deleted && errors.Is(err, ErrNameTaken) {
		d.metrics.UnpublishRefused.Inc()
	}
	d.log.Warn("manifest refused", attrs...)
}
