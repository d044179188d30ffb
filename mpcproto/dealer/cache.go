package dealer

import (
	"container/list"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"weak"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// The dealer's caches. A dealer serving many sessions of one model, and a
// party expanding one bundle per session, need the plan's hash and the
// schedule of (plan, batch) every time; both are computed once and kept
// in bounded caches safe for concurrent use: the hash by the plan's
// address (so a plan must not change once it has been dealt for or
// expanded with), the schedule by (plan hash, batch, masked).
const (
	maxCachedPlans     = 64
	maxCachedSchedules = 256
)

type scheduleKey struct {
	hash   [32]byte
	batch  int
	masked bool
	gates  bool
}

var (
	planHashes = newLRU[weak.Pointer[plan.Plan], [32]byte](maxCachedPlans)
	schedules  = newLRU[scheduleKey, []Request](maxCachedSchedules)
)

// planHash is p's hash (plan.Plan.Hash) as bytes, computed once per plan.
func planHash(p *plan.Plan) ([32]byte, error) {
	key := weak.Make(p)
	if h, ok := planHashes.get(key); ok {
		return h, nil
	}
	var out [32]byte
	h, err := p.Hash()
	if err != nil {
		return out, fmt.Errorf("dealer: hash plan: %w", err)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return out, fmt.Errorf("dealer: plan hash %q is not 32 hex bytes", h)
	}
	copy(out[:], b)
	planHashes.put(key, out)
	return out, nil
}

// checkPlan checks that p hashes to want; what names what was made for
// another plan ("bundle was dealt", ...).
func checkPlan(p *plan.Plan, want [32]byte, what string) error {
	hash, err := planHash(p)
	if err != nil {
		return err
	}
	if hash != want {
		return fmt.Errorf("dealer: %s for plan %x, not %x", what, want[:8], hash[:8])
	}
	return nil
}

// Schedule is the sequence of material requests of one evaluation of p with
// the given batch size by three or more parties (the carry circuit), in
// the order the engine consumes them. The requests' shapes are shared
// with the dealer's cache: do not modify them.
func Schedule(p *plan.Plan, batch int) ([]Request, error) {
	return ScheduleFor(p, batch, 3)
}

// ScheduleFor is Schedule for n parties: with two (UsesFSS) comparisons
// take sign gates, unless their keys would exceed MaxGateBytes per party
// (UsesGates).
func ScheduleFor(p *plan.Plan, batch, n int) ([]Request, error) {
	sched, err := cachedSchedule(p, batch, false, n)
	return slices.Clone(sched), err
}

// UsesGates reports whether a session of n parties evaluating p at the
// given batch takes sign gates: two parties (UsesFSS) and at most
// MaxGateBytes of DCF keys per party, else the carry circuit. The dealer
// and every party derive it from (plan, batch, n) alone.
func UsesGates(p *plan.Plan, batch, n int) (bool, error) {
	if !UsesFSS(n) {
		return false, nil
	}
	sched, err := cachedSchedule(p, batch, false, n)
	if err != nil {
		return false, err
	}
	return gateBytes(sched) > 0, nil
}

// cachedSchedule is scheduleWith for n parties, with sign gates when
// UsesFSS(n) and their keys fit in MaxGateBytes per party.
func cachedSchedule(p *plan.Plan, batch int, masked bool, n int) ([]Request, error) {
	if UsesFSS(n) {
		s, err := cachedScheduleWith(p, batch, masked, true)
		if err != nil || gateBytes(s) <= MaxGateBytes {
			return s, err
		}
	}
	return cachedScheduleWith(p, batch, masked, false)
}

// cachedScheduleWith is scheduleWith, computed once per (plan hash, batch,
// masked, gates); the result is shared and must not be modified.
func cachedScheduleWith(p *plan.Plan, batch int, masked, gates bool) ([]Request, error) {
	hash, err := planHash(p)
	if err != nil {
		return scheduleWith(p, batch, masked, gates) // not cacheable: let it say what is wrong
	}
	key := scheduleKey{hash: hash, batch: batch, masked: masked, gates: gates}
	if s, ok := schedules.get(key); ok {
		return s, nil
	}
	s, err := scheduleWith(p, batch, masked, gates)
	if err != nil {
		return nil, err
	}
	schedules.put(key, s)
	return s, nil
}

// lru is a bounded map that forgets its least recently used entry first;
// it is safe for concurrent use. A value is computed outside the lock, so
// two callers may compute the same one: the caches hold pure functions of
// their keys.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	items map[K]*list.Element // of *lruEntry[K, V]
	order *list.List          // most recently used first
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, items: make(map[K]*list.Element), order: list.New()}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	if c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruEntry[K, V]).key)
	}
}
