package node

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// The repair triggers and the switch to repaired shares: every holder of a
// model with a repair policy probes its co-holders (every Grace/4, at
// least minWatchInterval, jittered); when one has been unreachable for the
// grace, the lowest-index live holder initiates a repair. After every
// registry change, holders drop what an amended manifest retires.

// minWatchInterval is the shortest interval between two probes of the
// co-holders; idleWatchInterval is used when no held model has a policy.
const (
	minWatchInterval  = time.Second
	idleWatchInterval = 30 * time.Second
)

// repairLoop runs the watcher and the switch until the node closes.
func (n *Node) repairLoop() {
	defer n.wg.Done()
	changed, stop := n.disc.Watch()
	defer stop()
	var last time.Time
	for {
		n.repairSwitch()
		interval := n.watchInterval()
		if time.Since(last) >= interval {
			last = time.Now()
			n.repairWatch()
		}
		jittered := time.Duration(float64(interval) * (0.75 + 0.5*rand.Float64()))
		t := time.NewTimer(jittered)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// watchedModels are the effective manifests of the models this node holds
// whose policy allows repairs.
func (n *Node) watchedModels() []*discovery.Manifest {
	var out []*discovery.Manifest
	for _, m := range n.disc.Models() {
		if m.Repair.Enabled() && m.Replicated() && containsPeer(m.Holders, n.ID()) {
			out = append(out, m)
		}
	}
	return out
}

// watchInterval is Grace/4 of the shortest grace of the watched models, at
// least minWatchInterval.
func (n *Node) watchInterval() time.Duration {
	d := idleWatchInterval
	for _, m := range n.watchedModels() {
		d = min(d, max(m.Repair.Grace/4, minWatchInterval))
	}
	return d
}

// repairWatch probes the co-holders of the watched models, records since
// when each is unreachable, and initiates the repairs this node is due to
// run: it is the lowest-index live holder of a model with a holder down
// for its grace.
func (n *Node) repairWatch() {
	models := n.watchedModels()
	var peers []peer.ID
	for _, m := range models {
		for _, h := range m.Holders {
			if h != n.ID() && !slices.Contains(peers, h) {
				peers = append(peers, h)
			}
		}
	}
	// A peer found down counts as down since the probe began.
	now := time.Now()
	ctx, cancel := context.WithTimeout(n.ctx, probeTimeout+time.Second)
	live := n.probeHolders(ctx, peers, nil)
	cancel()
	n.rep.mu.Lock()
	n.rep.probed = time.Now()
	for p := range n.rep.down {
		if !slices.Contains(peers, p) || live[p] {
			delete(n.rep.down, p)
		}
	}
	for _, p := range peers {
		if _, ok := n.rep.down[p]; !ok && !live[p] {
			n.rep.down[p] = now
		}
	}
	n.rep.mu.Unlock()
	live[n.ID()] = true
	for _, m := range models {
		var down []peer.ID
		for _, h := range m.Holders {
			if !live[h] && n.rep.downFor(h) >= m.Repair.Grace {
				down = append(down, h)
			}
		}
		first := slices.IndexFunc(m.Holders, func(h peer.ID) bool { return live[h] })
		key := storeKey(m.Owner, m.ID)
		if len(down) == 0 || m.Holders[first] != n.ID() || n.rep.initiating(key) || n.rep.backingOff(key) {
			continue
		}
		if len(down) > m.Tolerate {
			down = down[:m.Tolerate]
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, repairAskTimeout)
			defer cancel()
			_, err := n.runRepair(ctx, m, down, nil)
			wait := n.rep.repaired(key, err, n.watchInterval())
			if err != nil {
				n.log.Warn("repair failed", "model", m.ID, "down", down, "retry_in", wait, "err", err)
			}
		}()
	}
}

// watchBackoff is the watcher's wait after failed repairs of a model: the
// next attempt is not before next; fails counts the failures in a row.
type watchBackoff struct {
	fails int
	next  time.Time
}

// maxWatchBackoff bounds the wait between two failed repairs of a model.
const maxWatchBackoff = 10 * time.Minute

// repaired records the outcome of a watcher's repair of the model key and
// returns the wait before the next attempt: none after a success, else the
// watch interval doubled per failure in a row, at most maxWatchBackoff (a
// repair with no peer to bring in would otherwise be retried, with its
// probes and plans, every interval).
func (r *repairer) repaired(key string, err error, interval time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.backoff, key)
		return 0
	}
	b := r.backoff[key]
	b.fails++
	wait := min(interval<<min(b.fails, 20), maxWatchBackoff)
	b.next = time.Now().Add(wait)
	r.backoff[key] = b
	return wait
}

// backingOff tells whether the watcher waits before repairing key again.
func (r *repairer) backingOff(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.backoff[key]
	return ok && time.Now().Before(b.next)
}

// downFor is how long p has been unreachable for this node's watcher (0
// when it is not known to be down).
func (r *repairer) downFor(p peer.ID) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.down[p]
	if !ok {
		return 0
	}
	return time.Since(t)
}

// probeFresh is how old the watcher's last probe may be to stand for a
// new one: two intervals and a probe's length.
func (n *Node) probeFresh() time.Duration {
	return 2*n.watchInterval() + probeTimeout + time.Second
}

// probedWithin tells whether the watcher's last probe ended within d.
func (r *repairer) probedWithin(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.probed.IsZero() && time.Since(r.probed) <= d
}

// initiating tells whether this node runs a repair of the model now.
func (r *repairer) initiating(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[key]
}

// busy tells whether a repair session of the model is open here.
func (r *repairer) busy(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sessions[key]
	return s != nil && time.Now().Before(s.deadline)
}

// repairSwitch drops what amended manifests retire: the shares versions
// older than the one served, and every share of a model whose amended
// holder list no longer names this node (a replaced holder come back).
// Models with a repair session open here are left alone.
func (n *Node) repairSwitch() {
	for _, sm := range n.store.list() {
		if n.ctx.Err() != nil {
			return
		}
		owner, err := peer.Decode(sm.meta.Owner)
		if err != nil {
			continue
		}
		m, ok := n.disc.Latest(sm.meta.Model)
		if !ok || m.Owner != owner || m.Deleted || m.RepairSeq == 0 || n.rep.busy(storeKey(owner, m.ID)) {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		switch {
		case !containsPeer(m.Holders, n.ID()):
			err = n.store.remove(ctx, owner, m.ID)
			n.log.Info("dropped the shares of a model repaired without this peer", "model", m.ID, "repair_seq", m.RepairSeq, "err", err)
		case sm.meta.Version < m.Shares():
			if _, serr := n.store.getVersion(owner, m.ID, m.Shares()); serr == nil {
				err = n.store.removeVersion(ctx, owner, m.ID, sm.meta.Version)
				n.log.Info("dropped the shares replaced by a repair", "model", m.ID, "version", sm.meta.Version, "serving", m.Shares(), "err", err)
			}
		}
		cancel()
	}
}
