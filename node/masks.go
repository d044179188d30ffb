package node

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// maxMaskSets bounds the mask sets a dealer keeps and the opened masks a
// holder keeps (each as large as the model's masked weights, twice for a
// holder).
const maxMaskSets = 32

// maskCache holds the long-term state of the "mask weights once"
// optimisation (dealer.Masks, engine.WeightMasks): a dealer's mask set per
// model version and holder list, a holder's opened masks per model version,
// party and mask set. It lives in memory: after a restart the dealer draws
// new masks and the holders open them again (one extra round).
type maskCache struct {
	mu     sync.Mutex
	dealer map[string]*dealer.Masks
	holder map[string]*engine.WeightMasks
}

func newMaskCache() *maskCache {
	return &maskCache{dealer: map[string]*dealer.Masks{}, holder: map[string]*engine.WeightMasks{}}
}

// modelKey names one published model version: masks are never shared
// between two models, even with the same plan (F = W - B for two W with one
// B would reveal their difference).
func modelKey(m *discovery.Manifest) string {
	hs := make([]string, len(m.Holders))
	for i, h := range m.Holders {
		hs[i] = h.String()
	}
	return fmt.Sprintf("%s/%s/%d/%s/%s", m.Owner, m.ID, m.Version, m.PlanHash, strings.Join(hs, ","))
}

// forDealer returns the dealer's mask set for the model, drawing it on first use.
func (c *maskCache) forDealer(m *discovery.Manifest, p *plan.Plan) (*dealer.Masks, error) {
	k := modelKey(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ms := c.dealer[k]; ms != nil {
		return ms, nil
	}
	ms, err := dealer.NewMasks(p, len(m.Holders), crand.Reader)
	if err != nil {
		return nil, err
	}
	if len(c.dealer) >= maxMaskSets {
		clear(c.dealer)
	}
	c.dealer[k] = ms
	return ms, nil
}

func (c *maskCache) getHolder(k string) *engine.WeightMasks {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder[k]
}

func (c *maskCache) putHolder(k string, wm *engine.WeightMasks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.holder) >= maxMaskSets {
		clear(c.holder)
	}
	c.holder[k] = wm
}

// holderMasks returns the opened weight masks of the session's mask set.
// The holders first agree, in one round of one byte, on whether all of them
// already have these masks; if any lacks them, all open them together
// (engine.OpenMasks, one more round). It returns the rounds it used.
func (n *Node) holderMasks(ctx context.Context, t *streamTransport, sess *holderSession, p *plan.Plan,
	weights map[string]*tensor.Dense[uint64], mb *dealer.MaskBundle) (*engine.WeightMasks, int, error) {
	k := fmt.Sprintf("%s/%d/%s", sess.modelKey, sess.party, hex.EncodeToString(mb.ID[:]))
	wm := n.masks.getHolder(k)
	have := byte(0)
	if wm != nil {
		have = 1
	}
	all := have == 1
	for j := range t.Parties() {
		if j != t.Self() {
			if err := t.Send(ctx, j, []byte{have}); err != nil {
				return nil, 0, fmt.Errorf("mask agreement: %w", err)
			}
		}
	}
	for j := range t.Parties() {
		if j == t.Self() {
			continue
		}
		b, err := t.Recv(ctx, j)
		if err != nil {
			return nil, 0, fmt.Errorf("mask agreement: %w", err)
		}
		if len(b) != 1 || b[0] > 1 {
			return nil, 0, &PeerError{Peer: sess.holders[j], Role: fmt.Sprintf("holder %d", j), Err: fmt.Errorf("mask agreement: bad message of %d bytes", len(b))}
		}
		all = all && b[0] == 1
	}
	if all {
		return wm, 1, nil
	}
	wm, st, err := engine.OpenMasks(ctx, p, t, weights, mb)
	if err != nil {
		return nil, 1 + st.Rounds, fmt.Errorf("open weight masks: %w", err)
	}
	n.masks.putHolder(k, wm)
	return wm, 1 + st.Rounds, nil
}
