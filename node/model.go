package node

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// Model is a model ready to query: its signed manifest and its plan,
// decoded and checked against the manifest's plan hash once per plan hash.
type Model struct {
	*discovery.Manifest
	Plan *plan.Plan
}

// Model looks model id up (discovery: the registry, else the DHT) and
// returns it with its plan, for Query. An id no manifest names is
// ErrUnknownModel. Errors start "look up model ID".
func (n *Node) Model(ctx context.Context, id string) (*Model, error) {
	m, err := n.model(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("look up model %q: %w", id, err)
	}
	return m, nil
}

// model is Model with its errors unprefixed.
func (n *Node) model(ctx context.Context, id string) (*Model, error) {
	m, err := n.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := n.plans.get(m)
	if err != nil {
		return nil, err
	}
	return &Model{Manifest: m, Plan: p}, nil
}

// lookup finds model id's manifest; an unknown id wraps both
// ErrUnknownModel and discovery.ErrNotFound.
func (n *Node) lookup(ctx context.Context, id string) (*discovery.Manifest, error) {
	m, err := n.disc.Lookup(ctx, id)
	if errors.Is(err, discovery.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownModel, err)
	}
	return m, err
}

// planCache keeps decoded plans by hash.
type planCache struct {
	mu    sync.Mutex
	plans map[string]*plan.Plan
}

func newPlanCache() *planCache { return &planCache{plans: map[string]*plan.Plan{}} }

// get decodes (or returns the cached) plan of a manifest, checking its hash
// (plan.VerifyHash) when it decodes it.
func (c *planCache) get(m *discovery.Manifest) (*plan.Plan, error) {
	c.mu.Lock()
	p := c.plans[m.PlanHash]
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	if err := plan.VerifyHash(m.Plan, m.PlanHash); err != nil {
		return nil, fmt.Errorf("model %q: %w", m.ID, err)
	}
	p, err := plan.Unmarshal(m.Plan)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.ID, err)
	}
	c.mu.Lock()
	if len(c.plans) >= 256 {
		clear(c.plans)
	}
	c.plans[m.PlanHash] = p
	c.mu.Unlock()
	return p, nil
}
