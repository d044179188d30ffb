package node

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
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
	bind   sync.Mutex // serialises bindMaskSeed's read-then-write
	mu     sync.Mutex
	dealer map[string]*dealer.Masks
	holder map[string]*engine.WeightMasks
}

func newMaskCache() *maskCache {
	return &maskCache{dealer: map[string]*dealer.Masks{}, holder: map[string]*engine.WeightMasks{}}
}

// modelKey names one model's shares: its owner, ID, shares version, plan
// and holders. Masks are never shared between two models, even with the
// same plan (F = W - B for two W with one B would reveal their
// difference); a manifest update that changes only the dealers keeps the
// key. Holders add their stored shares' checksum (see holderMasks).
func modelKey(m *discovery.Manifest) string {
	hs := make([]string, len(m.Holders))
	for i, h := range m.Holders {
		hs[i] = h.String()
	}
	return fmt.Sprintf("%s/%s/%d/%s/%s", m.Owner, m.ID, m.Shares(), m.PlanHash, strings.Join(hs, ","))
}

// forDealer returns the dealer's mask set for the model and the session's
// grouping of shares into parties, drawing it on first use. With
// replicated shares the set is per grouping (partitionKey), not per peer:
// every replica acting for the same shares in the same party slot gets
// the same mask seed and opens F = W - B against the same share sum, so
// it opens the same F (nothing new); a slot whose shares differ gets
// another set (bindMaskSeed refuses one seed against two share sums).
func (c *maskCache) forDealer(m *discovery.Manifest, p *plan.Plan, shareSets [][]int) (*dealer.Masks, error) {
	k := modelKey(m)
	if m.Replicated() {
		k += "/" + partitionKey(shareSets)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ms := c.dealer[k]; ms != nil {
		return ms, nil
	}
	ms, err := dealer.NewMasks(p, len(shareSets), crand.Reader)
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
func (n *Node) holderMasks(ctx context.Context, t *streamTransport, sess *holderSession, mb *dealer.MaskBundle) (*engine.WeightMasks, int, error) {
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
	if err := n.bindMaskSeed(ctx, mb, sess); err != nil {
		return nil, 1, err
	}
	wm, st, err := engine.OpenMasks(ctx, sess.plan, t, sess.weights, mb)
	if err != nil {
		return nil, 1 + st.Rounds, fmt.Errorf("open weight masks: %w", err)
	}
	n.masks.putHolder(k, wm)
	return wm, 1 + st.Rounds, nil
}

// maskSeedPrefix is the datastore namespace of the mask seeds this holder
// has opened, each bound to the shares it opened them against.
const maskSeedPrefix = "/node/maskseed/"

// bindMaskSeed records that this holder opens the mask bundle's seed
// against the session's shares (model key, stored shares' checksum, party)
// and refuses a seed already opened against other shares: opening one mask
// B with two weight sets would reveal their difference (F - F' = W - W').
// The record is persistent, so a restart does not forget it.
func (n *Node) bindMaskSeed(ctx context.Context, mb *dealer.MaskBundle, sess *holderSession) error {
	h := sha256.Sum256(append([]byte("grid mask seed\x00"), mb.Seed[:]...))
	key := ds.NewKey(maskSeedPrefix + hex.EncodeToString(h[:]))
	binding := []byte(fmt.Sprintf("%s/%d", sess.modelKey, sess.party))
	n.masks.bind.Lock()
	defer n.masks.bind.Unlock()
	old, err := n.store.ds.Get(ctx, key)
	switch {
	case err == nil && !bytes.Equal(old, binding):
		return fmt.Errorf("%w: %w: the dealer's mask set %x was already opened against other shares; opening it again would reveal the difference of two weight sets",
			errBadRequest, ErrMaskReuse, mb.ID[:8])
	case err == nil:
		return nil
	case !errors.Is(err, ds.ErrNotFound):
		return fmt.Errorf("mask seed record: %w", err)
	}
	if err := n.store.ds.Put(ctx, key, binding); err != nil {
		return fmt.Errorf("mask seed record: %w", err)
	}
	return n.store.ds.Sync(ctx, key)
}
