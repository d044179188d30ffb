package discovery

import (
	"context"
	"errors"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// This file holds the reading side of the gossipsub topic: the validator
// that every message must pass and the loop that applies what it accepts.

// validateMessage is the gossipsub topic validator: the envelope must open
// (size, signature, signer = owner, fields) and the registry must accept it
// (name ownership, newer version). A local publish of what the registry
// already holds passes. Stale versions are ignored (the forwarder may just
// be behind), everything else is rejected (the forwarder is penalised).
func (d *Discovery) validateMessage(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	m, err := Open(msg.Data)
	if err != nil {
		d.refused(sourcePubsub, from, nil, err)
		return pubsub.ValidationReject
	}
	v, err := d.reg.check(m, msg.Data)
	switch {
	case v == verdictAccept, v == verdictDuplicate && from == d.h.ID():
		msg.ValidatorData = m
		return pubsub.ValidationAccept
	case v == verdictDuplicate:
		return pubsub.ValidationIgnore
	}
	d.refused(sourcePubsub, from, m, err)
	if errors.Is(err, ErrStaleVersion) || errors.Is(err, errRegistryFull) {
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationReject
}

// readTopic applies every validated topic message to the registry.
func (d *Discovery) readTopic() {
	defer d.wg.Done()
	for {
		msg, err := d.sub.Next(d.ctx)
		if err != nil {
			return
		}
		m, ok := msg.ValidatorData.(*Manifest)
		if !ok {
			_, _ = d.ingest(d.ctx, sourcePubsub, msg.ReceivedFrom, msg.Data)
			continue
		}
		_, _ = d.accept(d.ctx, sourcePubsub, msg.ReceivedFrom, m, msg.Data)
	}
}
