package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// This file holds the joining of the network: dialling the bootstrap peers
// and WaitReady, which waits for a DHT peer, the first catalog pull and the
// topic mesh.

// connectBootstrap dials every bootstrap peer in parallel and returns how
// many are connected.
func (d *Discovery) connectBootstrap(ctx context.Context) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		n  int
	)
	for _, ai := range d.cfg.Bootstrap {
		if ai.ID == d.h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d.h.Network().Connectedness(ai.ID) == network.Connected {
				mu.Lock()
				n++
				mu.Unlock()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, bootstrapConnectTimeout)
			defer cancel()
			if err := d.h.Connect(cctx, ai); err != nil {
				d.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// WaitReady blocks until the DHT routing table holds at least one peer,
// retrying the bootstrap peers meanwhile. The first time it succeeds it
// also pulls the catalog of every connected peer, so that Models is
// complete, and a server waits (at most a few seconds) to join the
// gossipsub mesh. With no bootstrap peers it returns at once. Its error
// names the bootstrap peers when none answered.
func (d *Discovery) WaitReady(ctx context.Context) error {
	if len(d.cfg.Bootstrap) == 0 {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastDial := time.Now()
	for d.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			ids := make([]peer.ID, len(d.cfg.Bootstrap))
			for i, ai := range d.cfg.Bootstrap {
				ids[i] = ai.ID
			}
			return fmt.Errorf("wait for dht peers (bootstrap %v): %w", ids, ctx.Err())
		case <-d.ctx.Done():
			return errors.New("wait for dht peers: discovery closed")
		case <-tick.C:
		}
		if time.Since(lastDial) > time.Second {
			d.connectBootstrap(ctx)
			lastDial = time.Now()
		}
	}
	if !d.readyOnce.Load() {
		if err := d.Sync(ctx); err != nil {
			d.log.Debug("initial catalog sync incomplete", "err", err)
		}
	}
	if d.cfg.Server && !d.readyOnce.Load() {
		// A daemon also waits, briefly, to be grafted into the topic mesh:
		// gossip forwarded before that would not reach it.
		mctx, cancel := context.WithTimeout(ctx, meshWaitTimeout)
		defer cancel()
		for d.meshSize() == 0 && len(d.topic.ListPeers()) > 0 && mctx.Err() == nil {
			select {
			case <-mctx.Done():
			case <-tick.C:
			}
		}
	}
	d.readyOnce.Store(true)
	return nil
}

// meshSize is the number of this node's mesh peers on the topic.
func (d *Discovery) meshSize() int {
	return d.mesh.size(func(p peer.ID) bool { return d.h.Network().Connectedness(p) == network.Connected })
}
