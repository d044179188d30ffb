package node

import (
	"errors"
	"testing"
	"time"
)

// TestWatchBackoff checks the watcher's wait after failed repairs: the
// interval doubled per failure in a row, bounded, and none after a
// success.
func TestWatchBackoff(t *testing.T) {
	r := &repairer{backoff: map[string]watchBackoff{}}
	fail := errors.New("no peer to bring in")
	tests := []struct {
		err  error
		want time.Duration
	}{
		{fail, 2 * time.Second},
		{fail, 4 * time.Second},
		{fail, 8 * time.Second},
		{nil, 0},
		{fail, 2 * time.Second},
	}
	for i, tc := range tests {
		if got := r.repaired("m", tc.err, time.Second); got != tc.want {
			t.Fatalf("outcome %d: wait %v, want %v", i, got, tc.want)
		}
		if r.backingOff("m") != (tc.err != nil) {
			t.Fatalf("outcome %d: backing off %v", i, r.backingOff("m"))
		}
	}
	for range 30 {
		r.repaired("big", fail, time.Minute)
	}
	if got := r.repaired("big", fail, time.Minute); got != maxWatchBackoff {
		t.Fatalf("after many failures: wait %v, want %v", got, maxWatchBackoff)
	}
	if r.backingOff("other") {
		t.Fatal("a model never repaired is backing off")
	}
}
