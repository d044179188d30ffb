package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// holderVersions waits (bounded) until every holder's registry knows
// manifest version v of id and stores exactly the versions want of it.
func holderVersions(t *testing.T, s *testSwarm, id string, v uint64, want []uint64) {
	t.Helper()
	var got [][]uint64
	for range 100 {
		got = got[:0]
		done := true
		for _, h := range s.holders {
			m, ok := h.disc.Latest(id)
			vs := h.store.versions(s.client.ID(), id)
			got = append(got, vs)
			done = done && ok && m.Version == v && slices.Equal(vs, want)
		}
		if done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("holders store versions %v of %q, want %v at manifest version %d", got, id, want, v)
}

// TestPublishUpdate: re-publishing a live model needs Update; with it the
// old version answers while the new one is uploaded (staged), the switch
// happens at the new manifest, and older versions are then dropped; a
// holder keeps at most two versions, never dropping the one it serves.
func TestPublishUpdate(t *testing.T) {
	s := newTestSwarm(t, 2)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, w := plan.Seed()
	m1, err := s.client.Publish(ctx, "upd", p, w, PublishOptions{Holders: 2})
	if err != nil {
		t.Fatal(err)
	}
	var exists *ModelExistsError
	_, err = s.client.Publish(ctx, "upd", p, w, PublishOptions{Holders: 2})
	if !errors.Is(err, ErrModelExists) || !errors.As(err, &exists) || exists.Manifest.Version != m1.Version {
		t.Fatalf("publish again without Update: %v", err)
	}
	w2 := plan.Weights{"W": w["W"], "B": &tensor.Dense[float64]{Shape: []int{1}, Data: []float64{2000}}}
	var replaced *discovery.Manifest
	m2, err := s.client.stagePublish(ctx, "upd", p, w2, PublishOptions{Holders: 2, Update: true,
		Replaces: func(old *discovery.Manifest) { replaced = old }})
	if err != nil {
		t.Fatal(err)
	}
	if replaced == nil || replaced.Version != m1.Version || m2.Version <= m1.Version {
		t.Fatalf("replaced %v, new version %d, old %d", replaced, m2.Version, m1.Version)
	}
	t.Run("staged: the old version answers", func(t *testing.T) {
		holderVersions(t, s, "upd", m1.Version, []uint64{m1.Version, m2.Version})
		res, err := s.client.Infer(ctx, "upd", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 1022)
	})
	if err := s.client.disc.Publish(ctx, m2, s.client.sk); err != nil {
		t.Fatal(err)
	}
	t.Run("announced: the new version answers", func(t *testing.T) {
		holderVersions(t, s, "upd", m2.Version, []uint64{m2.Version})
		res, err := s.client.Infer(ctx, "upd", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 2022)
	})
	t.Run("third upload drops the oldest not served", func(t *testing.T) {
		o := PublishOptions{Holders: 2, Update: true}
		m3, err := s.client.stagePublish(ctx, "upd", p, w, o)
		if err != nil {
			t.Fatal(err)
		}
		holderVersions(t, s, "upd", m2.Version, []uint64{m2.Version, m3.Version})
		m4, err := s.client.stagePublish(ctx, "upd", p, w, o)
		if err != nil {
			t.Fatal(err)
		}
		holderVersions(t, s, "upd", m2.Version, []uint64{m2.Version, m4.Version})
		res, err := s.client.Infer(ctx, "upd", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, res, 2022)
	})
}
