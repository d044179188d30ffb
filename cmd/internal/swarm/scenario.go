// Package swarm runs testground-style scenarios against a local swarm of real
// `grid daemon` processes: a scenario file names a plan, a case, the numbers
// of instances and the case's parameters; the runner starts the daemons on
// loopback with their own repo dirs, waits until they have found each other,
// runs the case, collects a Result (JSON, a summary table, PNG plots) and
// stops every process it started.
//
// Cases:
//   - seed: publish the seed model in MPC mode over H holders, query it,
//     check the answer (1022 for [5,3]).
//   - scale: for each instance count, the time until every daemon lists a
//     newly published manifest, query latency and per-daemon memory (RSS).
//   - churn: daemons leave and rejoin during a bounded series of queries;
//     answers are counted as right, clear failures, or wrong (must be 0).
//   - wan: a delaying proxy in front of each daemon (which announces the
//     proxy's address) adds a round-trip time; query latency against RTT.
package swarm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Plan is the only plan this runner knows: the grid network.
const Plan = "grid"

// The cases of the grid plan.
const (
	CaseSeed  = "seed"
	CaseScale = "scale"
	CaseChurn = "churn"
	CaseWAN   = "wan"
)

// Cases lists every case the runner implements.
var Cases = []string{CaseSeed, CaseScale, CaseChurn, CaseWAN}

// Limits on scenario values: scenarios are run on one 2-core machine, and a
// scenario file is outside input.
const (
	MaxScenarioSize = 64 << 10
	MaxInstances    = 100
	MaxQueries      = 1000
	MaxRTT          = 2 * time.Second
	MaxValues       = 1 << 16
	MaxTimeout      = time.Hour
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("20ms", "1m30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"20ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Scenario is one scenario file: a plan, a case, instance counts, parameters
// and timeouts.
type Scenario struct {
	// Plan must be "grid".
	Plan string `json:"plan"`
	// Case is one of Cases.
	Case string `json:"case"`
	// Description is free text for humans.
	Description string `json:"description,omitempty"`
	// Instances are the daemon counts to run, one run each (scale: several;
	// the other cases: one). --nodes replaces it with one count.
	Instances []int `json:"instances"`
	// Params are the case's parameters.
	Params Params `json:"params"`
	// Timeouts bound each phase.
	Timeouts Timeouts `json:"timeouts"`
}

// Params are the parameters of a case; fields a case does not use must be
// left at zero.
type Params struct {
	// Holders is the number of share-holders the model is published over.
	Holders int `json:"holders"`
	// Tolerate is how many holders may be down while the model answers
	// (grid publish --tolerate; 0 to holders-2, default 0: one share per
	// holder, every holder needed).
	Tolerate int `json:"tolerate,omitempty"`
	// Model is the published model's name.
	Model string `json:"model"`
	// ModelFile is the ONNX file to publish, relative to the repository root
	// (or absolute).
	ModelFile string `json:"model_file"`
	// Values is the flat query input (grid infer --values).
	Values []float64 `json:"values"`
	// Expect is the expected flat output.
	Expect []float64 `json:"expect"`
	// Tolerance is the largest absolute error accepted per output value.
	Tolerance float64 `json:"tolerance"`
	// Queries is the number of queries per run (latency samples; churn: the
	// length of the series).
	Queries int `json:"queries"`
	// Plain also queries the model published in plain mode (seed: one more
	// publish with --plain, one more query).
	Plain bool `json:"plain,omitempty"`
	// RTTs are the added round-trip times (wan only); "0s" is the baseline.
	RTTs []Duration `json:"rtts,omitempty"`
	// Churn describes the churn case's leave/join events.
	Churn *Churn `json:"churn,omitempty"`
}

// Churn parameterises the churn case: before every query, with probability
// Rate (drawn from the seeded generator), one daemon leaves or a stopped one
// rejoins from its repo dir; at most MaxDown are down at once. Daemon 0 is
// the swarm's bootstrap peer and never leaves.
type Churn struct {
	Rate    float64 `json:"rate"`
	MaxDown int     `json:"max_down"`
	// Crash is the fraction of leaves that are crashes (SIGKILL: no clean
	// shutdown, the peers find out by timeouts) rather than SIGTERM.
	Crash float64 `json:"crash,omitempty"`
	// Arrive is the fraction of events that are arrivals: a brand-new
	// daemon (fresh repo, seeded identity) joins and must catch up on the
	// model published before it existed.
	Arrive float64 `json:"arrive,omitempty"`
	// HoldersOnly restricts leaving to the model's holders (the hard case:
	// queries that need a missing holder must fail clearly).
	HoldersOnly bool `json:"holders_only,omitempty"`
	// BeyondFrom (with params.tolerate > 0) is the query from which more
	// than tolerate holders may be down: before it, a leave never takes
	// the holders down beyond tolerate; from it on, leaves take holders
	// only, up to max_down, so that clear failures are seen. 0: no such
	// phase. With tolerate 0 the churn is unconstrained (holders_only
	// aside), as before.
	BeyondFrom int `json:"beyond_from,omitempty"`
}

// Timeouts bound the phases of a run.
type Timeouts struct {
	// Ready bounds the start of all daemons and their finding each other.
	Ready Duration `json:"ready"`
	// Publish bounds one publish.
	Publish Duration `json:"publish"`
	// Discover bounds the wait until every daemon lists a manifest.
	Discover Duration `json:"discover"`
	// Query bounds one query.
	Query Duration `json:"query"`
	// Total bounds the whole scenario.
	Total Duration `json:"total"`
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxScenarioSize+1))
	if err != nil {
		return nil, fmt.Errorf("load scenario %s: %w", path, err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a scenario. Unknown fields are errors, so a
// misspelt parameter is not silently ignored.
func Parse(b []byte) (*Scenario, error) {
	if len(b) > MaxScenarioSize {
		return nil, fmt.Errorf("scenario is over %d bytes", MaxScenarioSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode: trailing data after the scenario object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the scenario; errors name the field at fault.
func (s *Scenario) Validate() error {
	if s.Plan != Plan {
		return fmt.Errorf("plan %q: want %q", s.Plan, Plan)
	}
	if !slices.Contains(Cases, s.Case) {
		return fmt.Errorf("case %q: want one of %s", s.Case, strings.Join(Cases, ", "))
	}
	if err := s.validateInstances(); err != nil {
		return err
	}
	if err := s.Params.validate(); err != nil {
		return err
	}
	if err := s.validateRTTs(); err != nil {
		return err
	}
	if err := s.validateChurn(); err != nil {
		return err
	}
	if s.Case != CaseScale && len(s.Instances) != 1 {
		return fmt.Errorf("instances: case %s runs one swarm size, got %d", s.Case, len(s.Instances))
	}
	return s.Timeouts.validate()
}

// validateInstances checks the daemon counts against the limits and the
// number of holders.
func (s *Scenario) validateInstances() error {
	if len(s.Instances) == 0 {
		return errors.New("instances: at least one count is needed")
	}
	if len(s.Instances) > 16 {
		return fmt.Errorf("instances: %d counts, at most 16", len(s.Instances))
	}
	for i, n := range s.Instances {
		if n < 1 || n > MaxInstances {
			return fmt.Errorf("instances[%d] = %d: must be in [1, %d]", i, n, MaxInstances)
		}
		// The model's holders must be daemons other than a spare dealer:
		// with H holders, H+1 daemons are needed so the client can pick a
		// dealer that is not a holder.
		if n < s.Params.Holders+1 {
			return fmt.Errorf("instances[%d] = %d: fewer than params.holders+1 = %d (holders plus a dealer)", i, n, s.Params.Holders+1)
		}
	}
	return nil
}

// validate checks the parameters every case uses.
func (p *Params) validate() error {
	if p.Holders < 2 || p.Holders > MaxInstances {
		return fmt.Errorf("params.holders = %d: must be in [2, %d]", p.Holders, MaxInstances)
	}
	if p.Model == "" || len(p.Model) > 128 || strings.ContainsAny(p.Model, " /\\\t\n") {
		return fmt.Errorf("params.model %q: want a short name without spaces or slashes", p.Model)
	}
	if p.ModelFile == "" {
		return errors.New("params.model_file: empty")
	}
	if len(p.Values) == 0 || len(p.Values) > MaxValues {
		return fmt.Errorf("params.values: %d values, want 1..%d", len(p.Values), MaxValues)
	}
	if len(p.Expect) == 0 || len(p.Expect) > MaxValues {
		return fmt.Errorf("params.expect: %d values, want 1..%d", len(p.Expect), MaxValues)
	}
	if p.Tolerate < 0 || p.Tolerate > 0 && p.Tolerate > p.Holders-2 {
		return fmt.Errorf("params.tolerate = %d: must be in [0, params.holders-2 = %d]", p.Tolerate, p.Holders-2)
	}
	if !(p.Tolerance > 0 && p.Tolerance < 1e6) {
		return fmt.Errorf("params.tolerance = %v: must be positive", p.Tolerance)
	}
	if p.Queries < 1 || p.Queries > MaxQueries {
		return fmt.Errorf("params.queries = %d: must be in [1, %d]", p.Queries, MaxQueries)
	}
	return nil
}

// validateRTTs checks params.rtts: required for wan, refused otherwise.
func (s *Scenario) validateRTTs() error {
	rtts := s.Params.RTTs
	if s.Case != CaseWAN {
		if len(rtts) != 0 {
			return fmt.Errorf("params.rtts: only case wan takes RTTs, not %s", s.Case)
		}
		return nil
	}
	if len(rtts) == 0 || len(rtts) > 16 {
		return fmt.Errorf("params.rtts: %d values, want 1..16 for case wan", len(rtts))
	}
	for i, r := range rtts {
		if r < 0 || r.D() > MaxRTT {
			return fmt.Errorf("params.rtts[%d] = %s: must be in [0, %s]", i, r.D(), MaxRTT)
		}
	}
	return nil
}

// validateChurn checks params.churn: required for churn, refused otherwise.
func (s *Scenario) validateChurn() error {
	c := s.Params.Churn
	if s.Case != CaseChurn {
		if c != nil {
			return fmt.Errorf("params.churn: only case churn takes churn parameters, not %s", s.Case)
		}
		return nil
	}
	if c == nil {
		return errors.New("params.churn: missing for case churn")
	}
	if !(c.Rate > 0 && c.Rate <= 1) {
		return fmt.Errorf("params.churn.rate = %v: must be in (0, 1]", c.Rate)
	}
	if !(c.Crash >= 0 && c.Crash <= 1) {
		return fmt.Errorf("params.churn.crash = %v: must be in [0, 1]", c.Crash)
	}
	if !(c.Arrive >= 0 && c.Arrive <= 1) {
		return fmt.Errorf("params.churn.arrive = %v: must be in [0, 1]", c.Arrive)
	}
	if c.MaxDown < 1 {
		return fmt.Errorf("params.churn.max_down = %d: must be at least 1", c.MaxDown)
	}
	if c.BeyondFrom != 0 && (s.Params.Tolerate == 0 || c.BeyondFrom < 1 || c.BeyondFrom >= s.Params.Queries) {
		return fmt.Errorf("params.churn.beyond_from = %d: needs params.tolerate > 0 and must be in [1, params.queries-1]", c.BeyondFrom)
	}
	if c.BeyondFrom != 0 && c.MaxDown <= s.Params.Tolerate {
		return fmt.Errorf("params.churn.max_down = %d: the phase from beyond_from needs more than params.tolerate = %d down", c.MaxDown, s.Params.Tolerate)
	}
	for i, n := range s.Instances {
		if c.MaxDown >= n-1 {
			return fmt.Errorf("params.churn.max_down = %d: instances[%d] = %d leaves no daemon up beside the bootstrap", c.MaxDown, i, n)
		}
	}
	return nil
}

// validate checks that every timeout is set and bounded.
func (t *Timeouts) validate() error {
	for _, f := range []struct {
		name string
		d    Duration
	}{{"ready", t.Ready}, {"publish", t.Publish}, {"discover", t.Discover}, {"query", t.Query}, {"total", t.Total}} {
		if f.d <= 0 || f.d.D() > MaxTimeout {
			return fmt.Errorf("timeouts.%s = %s: must be in (0, %s]", f.name, f.d.D(), MaxTimeout)
		}
	}
	return nil
}

// WithNodes returns a copy of s that runs one swarm of n daemons.
func (s *Scenario) WithNodes(n int) *Scenario {
	c := *s
	c.Instances = []int{n}
	return &c
}

// WithHolders returns a copy of s that publishes over h holders.
func (s *Scenario) WithHolders(h int) *Scenario {
	c := *s
	c.Params.Holders = h
	return &c
}
