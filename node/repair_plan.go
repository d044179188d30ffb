package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// The pure parts of a repair's plan: who replaces whom, who sends which
// share, and the checks every holder makes of a plan it is sent.

// buildRepairPlan replaces the holders down of the effective manifest m by
// newcomers (same order) and picks each moving share's source: its least
// loaded carried-over holder.
func buildRepairPlan(m *discovery.Manifest, down, newcomers []peer.ID, now time.Time) (*repairPlan, error) {
	if len(down) != len(newcomers) || len(down) == 0 {
		return nil, fmt.Errorf("%d holders down, %d newcomers", len(down), len(newcomers))
	}
	holders := slices.Clone(m.Holders)
	replaced := make([]bool, len(holders))
	for k, d := range down {
		j := slices.Index(holders, d)
		if j < 0 {
			return nil, fmt.Errorf("%s is not a holder", d)
		}
		holders[j], replaced[j] = newcomers[k], true
	}
	assign := m.ShareHolders()
	sources := make([]peer.ID, len(assign))
	load := map[int]int{}
	for i, hs := range assign {
		if !slices.ContainsFunc(hs, func(j int) bool { return replaced[j] }) {
			continue
		}
		best := -1
		for _, j := range hs {
			if !replaced[j] && (best < 0 || load[j] < load[best]) {
				best = j
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("%w: every holder of share %d is down", ErrNoHolder, i)
		}
		load[best]++
		sources[i] = m.Holders[best]
	}
	version := max(m.Shares()+1, uint64(now.UnixMilli()))
	rec := &discovery.Repair{
		Model: m.ID, Owner: m.Owner, Base: m.Version, Seq: m.RepairSeq + 1,
		PrevHolders: slices.Clone(m.Holders), Holders: holders, SharesVersion: version, Time: now,
	}
	return &repairPlan{rec: rec, sources: sources}, nil
}

// checkRepairPlan checks a plan sent by from against the effective
// manifest m, as every holder of the new list does before it takes part:
// it follows m (model, owner, base, seq, holders, a newer shares version),
// m allows repairs, it replaces 1 to Tolerate holders by peers the policy
// allows, each moving share comes from a carried-over holder of it and
// no other share moves, and from is a carried-over holder. A plan from
// the owner (a re-sharing, Reshare) needs no policy and may replace any
// number of holders by any peers but the owner, a dealer or a holder. It
// returns this node's (self's) index in the new list and the replaced
// indices.
func checkRepairPlan(m *discovery.Manifest, rp *repairPlan, self, from peer.ID, now time.Time) (int, []int, error) {
	r := rp.rec
	owner := from == m.Owner
	switch {
	case m.Deleted || m.Mode != discovery.ModeMPC || !m.Replicated():
		return 0, nil, badRequest("model %q is not a replicated mpc model", m.ID)
	case !owner && !m.Repair.Enabled():
		return 0, nil, badRequest("model %q's manifest allows no repair", m.ID)
	case r.Model != m.ID || r.Owner != m.Owner || r.Base != m.Version || r.Seq != m.RepairSeq+1:
		return 0, nil, badRequest("the repair of %q (base %d, seq %d) does not follow its manifest (version %d, seq %d)", r.Model, r.Base, r.Seq, m.Version, m.RepairSeq)
	case !slices.Equal(r.PrevHolders, m.Holders) || len(r.Holders) != len(m.Holders):
		return 0, nil, badRequest("the repair of %q does not start from its manifest's holders", m.ID)
	case r.SharesVersion <= m.Shares():
		return 0, nil, badRequest("the repair's shares version %d is not newer than %d", r.SharesVersion, m.Shares())
	case r.SharesVersion > max(m.Shares()+1, uint64(now.Add(repairAskMaxAge).UnixMilli())):
		// A version far ahead of the clock would leave the owner no newer
		// version to publish.
		return 0, nil, badRequest("the repair's shares version %d is ahead of the clock", r.SharesVersion)
	case now.Sub(r.Time) > repairAskMaxAge || r.Time.Sub(now) > repairAskMaxAge:
		return 0, nil, badRequest("the repair's time %v is too far from now", r.Time)
	}
	var replaced []int
	for j, h := range r.Holders {
		if h == m.Holders[j] {
			continue
		}
		replaced = append(replaced, j)
		if err := repairNewcomerAllowed(m, h, owner); err != nil {
			return 0, nil, err
		}
	}
	switch {
	case len(replaced) == 0 || !owner && len(replaced) > m.Tolerate:
		return 0, nil, badRequest("the repair replaces %d holders, model %q tolerates 1 to %d", len(replaced), m.ID, m.Tolerate)
	case owner:
	case !slices.Contains(r.Holders, from) || slices.Contains(replaced, slices.Index(r.Holders, from)):
		return 0, nil, badRequest("%s, which sent the repair, is not a carried-over holder", from)
	}
	if err := checkRepairSources(m.ShareHolders(), r.Holders, replaced, rp.sources); err != nil {
		return 0, nil, err
	}
	self0 := slices.Index(r.Holders, self)
	if self0 < 0 {
		return 0, nil, badRequest("this peer is not in the repair's holder list")
	}
	return self0, replaced, nil
}

// repairNewcomerAllowed checks that h may be brought in: not the owner, a
// dealer or a holder; a candidate if the policy names any (unless the
// owner chose it).
func repairNewcomerAllowed(m *discovery.Manifest, h peer.ID, byOwner bool) error {
	switch {
	case h == m.Owner || slices.Contains(m.Dealers, h) || slices.Contains(m.Holders, h):
		return badRequest("%s is the owner, a dealer or a holder of %q: it cannot be brought in", h, m.ID)
	case !byOwner && len(m.Repair.Candidates) > 0 && !slices.Contains(m.Repair.Candidates, h):
		return badRequest("%s is not one of %q's repair candidates", h, m.ID)
	}
	return nil
}

// checkRepairSources checks that the shares a newcomer holds, and only
// those, have a source, a carried-over holder of the share.
func checkRepairSources(assign [][]int, holders []peer.ID, replaced []int, sources []peer.ID) error {
	if len(sources) != len(assign) {
		return badRequest("the repair names %d share sources, the model has %d shares", len(sources), len(assign))
	}
	for i, hs := range assign {
		moves := slices.ContainsFunc(hs, func(j int) bool { return slices.Contains(replaced, j) })
		src := sources[i]
		switch {
		case !moves && src != "":
			return badRequest("share %d has a source but no new holder", i)
		case !moves:
		case !slices.ContainsFunc(hs, func(j int) bool { return holders[j] == src && !slices.Contains(replaced, j) }):
			return badRequest("the source of share %d, %s, is not a carried-over holder of it", i, src)
		}
	}
	return nil
}

// pickNewcomers picks count reachable peers the policy allows: its
// candidates, else peers advertising the holder role, in random order.
func (n *Node) pickNewcomers(ctx context.Context, m *discovery.Manifest, count int) ([]peer.ID, error) {
	exclude := append(append(slices.Clone(m.Holders), m.Owner, n.ID()), m.Dealers...)
	var pool []peer.ID
	if len(m.Repair.Candidates) > 0 {
		for _, c := range m.Repair.Candidates {
			if !slices.Contains(exclude, c) {
				pool = append(pool, c)
			}
		}
	} else {
		found, err := n.reachable(ctx, RoleHolder, 32, exclude)
		if err != nil {
			return nil, fmt.Errorf("find peers advertising the holder role: %w", err)
		}
		pool = found
	}
	rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	var out []peer.ID
	for _, p := range pool {
		if len(out) == count {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := n.ensureAddrs(cctx, p)
		cancel()
		if err == nil {
			out = append(out, p)
		}
	}
	if len(out) < count {
		return nil, fmt.Errorf("%w: %d new holder(s) needed, %d reachable peer(s) the policy allows", ErrNoHolder, count, len(out))
	}
	return out, nil
}
