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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
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

	// Warm sessions (warm.go): the dealer's record of what it warmed, the
	// warm sessions a holder serves and the counters MaskStats reports.
	warmed   warmBook
	holding  chan struct{} // warm sessions served as holder (maxHolderWarms)
	opened   prometheus.Counter
	warmRuns *prometheus.CounterVec
}

func newMaskCache() *maskCache {
	return &maskCache{
		dealer: map[string]*dealer.Masks{}, holder: map[string]*engine.WeightMasks{},
		warmed:  warmBook{m: map[string]warmEntry{}},
		holding: make(chan struct{}, maxHolderWarms),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "grid_mask_opens_total", Help: "Weight mask sets this holder opened with the other holders (engine.OpenMasks), in sessions and warm sessions."}),
		warmRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grid_warms_total", Help: "Warm sessions this dealer ran (mask sets opened ahead of any query), by result."}, []string{"result"}),
	}
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
// The holders first agree, in one round of one byte, on whether all of
// them already have these masks; if any lacks them, they exchange what
// binds every party's seed (maskBinding, one more round), each records
// them all (bindMaskSet), and all open the masks together
// (engine.OpenMasks, one more round). It returns the rounds it used.
func (n *Node) holderMasks(ctx context.Context, t *streamTransport, sess *holderSession, mb *dealer.MaskBundle) (*engine.WeightMasks, int, error) {
	k := fmt.Sprintf("%s/%d/%s", sess.modelKey, sess.party, hex.EncodeToString(mb.ID[:]))
	wm := n.masks.getHolder(k)
	have := byte(0)
	if wm != nil {
		have = 1
	}
	all := have == 1
	msgs, err := exchangeAll(ctx, t, []byte{have})
	if err != nil {
		return nil, 0, fmt.Errorf("mask agreement: %w", err)
	}
	for j, b := range msgs {
		if j != t.Self() && (len(b) != 1 || b[0] > 1) {
			return nil, 0, &PeerError{Peer: sess.holders[j], Role: fmt.Sprintf("holder %d", j), Err: fmt.Errorf("mask agreement: bad message of %d bytes", len(b))}
		}
		all = all && b[0] == 1
	}
	if all {
		return wm, 1, nil
	}
	own := maskBinding{seed: seedHash(mb.Seed), binding: sess.binding(sess.party)}
	if msgs, err = exchangeAll(ctx, t, own.marshal()); err != nil {
		return nil, 1, fmt.Errorf("mask binding: %w", err)
	}
	bound := make([]maskBinding, len(msgs))
	for j, b := range msgs {
		if bound[j], err = parseMaskBinding(b); err != nil {
			return nil, 2, &PeerError{Peer: sess.holders[j], Role: fmt.Sprintf("holder %d", j), Err: fmt.Errorf("mask binding: %w", err)}
		}
	}
	if err := n.bindMaskSet(ctx, mb.ID, bound, t.Self(), sess.legacyBinding()); err != nil {
		return nil, 2, err
	}
	n.masks.opened.Inc()
	wm, st, err := engine.OpenMasks(ctx, sess.plan, t, sess.weights, mb)
	if err != nil {
		return nil, 2 + st.Rounds, fmt.Errorf("open weight masks: %w", err)
	}
	n.masks.putHolder(k, wm)
	return wm, 2 + st.Rounds, nil
}

// exchangeAll sends msg to every other holder and returns what each sent (its
// own msg at its own index): one round.
func exchangeAll(ctx context.Context, t *streamTransport, msg []byte) ([][]byte, error) {
	for j := range t.Parties() {
		if j != t.Self() {
			if err := t.Send(ctx, j, msg); err != nil {
				return nil, err
			}
		}
	}
	out := make([][]byte, t.Parties())
	out[t.Self()] = msg
	for j := range t.Parties() {
		if j == t.Self() {
			continue
		}
		b, err := t.Recv(ctx, j)
		if err != nil {
			return nil, err
		}
		out[j] = b
	}
	return out, nil
}

// maskBinding is one holder's message before a mask set is opened: the
// hash of its mask seed (seedHash) and the hash of what it binds the seed
// to (its shares: holderSession.binding). Every holder records every
// party's seed with that party's binding, so a dealer that hands the seeds
// of one mask set to the holders of another model, in another order, is
// caught by the holder that saw the seed before, whichever party it went
// to.
type maskBinding struct {
	seed, binding [sha256.Size]byte
}

// maskBindingLen is the size of a marshalled maskBinding.
const maskBindingLen = 2 * sha256.Size

func (a maskBinding) marshal() []byte {
	return append(a.seed[:len(a.seed):len(a.seed)], a.binding[:]...)
}

// parseMaskBinding decodes another holder's maskBinding.
func parseMaskBinding(b []byte) (maskBinding, error) {
	var a maskBinding
	if len(b) != maskBindingLen {
		return a, fmt.Errorf("bad message of %d bytes", len(b))
	}
	copy(a.seed[:], b)
	copy(a.binding[:], b[sha256.Size:])
	return a, nil
}

// seedHash names a mask seed in this holder's records (and to the other
// holders) without revealing it.
func seedHash(s share.Seed) [sha256.Size]byte {
	return sha256.Sum256(append([]byte("grid mask seed\x00"), s[:]...))
}

// binding is what the mask seed of party j of the session is bound to, as
// party j declares it: the hash of its shares' identity (modelKey, which
// names the model's shares version and the stored shares' checksum, or
// with replication the shares the party acts for and their sum's digest)
// and the party index.
func (s *holderSession) binding(j int) [sha256.Size]byte {
	return sha256.Sum256([]byte(fmt.Sprintf("grid mask binding\x00%s/%d", s.modelKey, j)))
}

// maskSeedPrefix is the datastore namespace of the mask seeds this holder
// has seen opened, each bound to the shares it was opened against.
const maskSeedPrefix = "/node/maskseed/"

// bindMaskSeed binds the mask bundle's seed to the session's own shares
// (bindSeed).
func (n *Node) bindMaskSeed(ctx context.Context, mb *dealer.MaskBundle, sess *holderSession) error {
	return n.bindSeed(ctx, mb.ID, seedHash(mb.Seed), sess.binding(sess.party), sess.legacyBinding())
}

// bindMaskSet binds every party's seed of a mask set to that party's
// shares (bindSeed), as the agreement round declared them; legacy is this
// party's (self's) binding in the earlier record format.
func (n *Node) bindMaskSet(ctx context.Context, id [32]byte, bound []maskBinding, self int, legacy []byte) error {
	for j, a := range bound {
		var old []byte
		if j == self {
			old = legacy
		}
		if err := n.bindSeed(ctx, id, a.seed, a.binding, old); err != nil {
			return err
		}
	}
	return nil
}

// legacyBinding is what a holder recorded for its own seed before every
// party's seed was bound (the record held the binding itself, not its
// hash): a record in that format for these shares is the same binding.
func (s *holderSession) legacyBinding() []byte {
	return []byte(fmt.Sprintf("%s/%d", s.modelKey, s.party))
}

// bindSeed records that the seed named seed is opened against the shares
// named binding and refuses a seed already opened against other shares:
// opening one mask B with two weight sets would reveal their difference
// (F - F' = W - W'). legacy, if set, is the same binding in the record
// format of earlier versions. The record is persistent, so a restart does not
// forget it.
func (n *Node) bindSeed(ctx context.Context, id, seed, binding [32]byte, legacy []byte) error {
	key := ds.NewKey(maskSeedPrefix + hex.EncodeToString(seed[:]))
	n.masks.bind.Lock()
	defer n.masks.bind.Unlock()
	old, err := n.store.ds.Get(ctx, key)
	switch {
	case err == nil && legacy != nil && bytes.Equal(old, legacy):
		// The earlier format's record of the same binding: rewritten below.
	case err == nil && !bytes.Equal(old, binding[:]):
		return fmt.Errorf("%w: %w: the dealer's mask set %x was already opened against other shares; opening it again would reveal the difference of two weight sets",
			errBadRequest, ErrMaskReuse, id[:8])
	case err == nil:
		return nil
	case !errors.Is(err, ds.ErrNotFound):
		return fmt.Errorf("mask seed record: %w", err)
	}
	if err := n.store.ds.Put(ctx, key, binding[:]); err != nil {
		return fmt.Errorf("mask seed record: %w", err)
	}
	return n.store.ds.Sync(ctx, key)
}
