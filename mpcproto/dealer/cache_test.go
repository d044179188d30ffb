package dealer

import (
	"encoding/hex"
	"sync"
	"testing"
	"weak"
)

func TestPlanHashCached(t *testing.T) {
	p := testPlan()
	h, err := planHash(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := p.Hash()
	if hex.EncodeToString(h[:]) != want {
		t.Fatalf("hash %x, want %s", h, want)
	}
	if c, ok := planHashes.get(weak.Make(p)); !ok || c != h {
		t.Fatal("the hash is not cached by the plan's address")
	}
	if h2, err := planHash(p); err != nil || h2 != h {
		t.Fatalf("second call: %x, %v", h2, err)
	}
}

func TestScheduleCached(t *testing.T) {
	p := testPlan()
	s1, err := Schedule(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := planHash(p)
	if _, ok := schedules.get(scheduleKey{hash: h, batch: 3}); !ok {
		t.Fatal("the schedule is not cached")
	}
	s1[0].N, s1[1] = 12345, Request{}
	s2, err := Schedule(testPlan(), 3) // another plan with the same hash
	if err != nil {
		t.Fatal(err)
	}
	if s2[0].N == 12345 || s2[1].Kind != KindTrunc {
		t.Fatal("a caller's change to a schedule reached the cache")
	}
	if _, err := Schedule(p, 0); err == nil {
		t.Fatal("batch 0: want an error")
	}
	if _, ok := schedules.get(scheduleKey{hash: h, batch: 0}); ok {
		t.Fatal("an error was cached")
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[int, string](2)
	c.put(1, "a")
	c.put(2, "b")
	if v, ok := c.get(1); !ok || v != "a" { // 1 is now the most recent
		t.Fatalf("get 1: %q %v", v, ok)
	}
	c.put(3, "c") // evicts 2
	if _, ok := c.get(2); ok {
		t.Fatal("2 was not evicted")
	}
	c.put(1, "A")
	if v, _ := c.get(1); v != "A" || c.order.Len() != 2 || len(c.items) != 2 {
		t.Fatalf("update: %q, %d entries", v, c.order.Len())
	}
	if v, ok := c.get(3); !ok || v != "c" {
		t.Fatalf("get 3: %q %v", v, ok)
	}
}

// TestCachesConcurrent deals and expands one plan from many goroutines:
// the caches are safe for concurrent use (run with -race) and every
// session's material fits.
func TestCachesConcurrent(t *testing.T) {
	p := testPlan()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bundles, err := Deal(p, 1+i%3, 2, nil)
			if err != nil {
				errs <- err
				return
			}
			for _, b := range bundles {
				if _, err := b.Expand(p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
