package swarm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scenarioDir is the repository's scenario directory, relative to this package.
const scenarioDir = "../../../scripts/scenarios"

func validScenario() Scenario {
	return Scenario{
		Plan:      Plan,
		Case:      CaseSeed,
		Instances: []int{5},
		Params: Params{
			Holders: 4, Model: "convnet", ModelFile: "testdata/seed.onnx",
			Values: []float64{5, 3}, Expect: []float64{1022}, Tolerance: 1e-3, Queries: 1,
		},
		Timeouts: Timeouts{
			Ready: Duration(time.Minute), Publish: Duration(time.Minute), Discover: Duration(time.Minute),
			Query: Duration(time.Minute), Total: Duration(time.Hour),
		},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Scenario)
		want   string // substring of the error; "" = valid
	}{
		{"valid seed", func(*Scenario) {}, ""},
		{"valid scale", func(s *Scenario) { s.Case = CaseScale; s.Instances = []int{10, 20, 50} }, ""},
		{"valid wan", func(s *Scenario) { s.Case = CaseWAN; s.Params.RTTs = []Duration{0, Duration(20 * time.Millisecond)} }, ""},
		{"valid churn", func(s *Scenario) { s.Case = CaseChurn; s.Params.Churn = &Churn{Rate: 0.5, MaxDown: 1} }, ""},
		{"wrong plan", func(s *Scenario) { s.Plan = "ipfs" }, "plan"},
		{"unknown case", func(s *Scenario) { s.Case = "storm" }, "case"},
		{"no instances", func(s *Scenario) { s.Instances = nil }, "instances"},
		{"zero instances", func(s *Scenario) { s.Instances = []int{0} }, "instances[0]"},
		{"too many instances", func(s *Scenario) { s.Instances = []int{MaxInstances + 1} }, "instances[0]"},
		{"too few for holders", func(s *Scenario) { s.Instances = []int{4} }, "holders+1"},
		{"seed with two sizes", func(s *Scenario) { s.Instances = []int{5, 6} }, "one swarm size"},
		{"one holder", func(s *Scenario) { s.Params.Holders = 1 }, "params.holders"},
		{"model with slash", func(s *Scenario) { s.Params.Model = "a/b" }, "params.model"},
		{"no model file", func(s *Scenario) { s.Params.ModelFile = "" }, "model_file"},
		{"no values", func(s *Scenario) { s.Params.Values = nil }, "params.values"},
		{"no expect", func(s *Scenario) { s.Params.Expect = nil }, "params.expect"},
		{"zero tolerance", func(s *Scenario) { s.Params.Tolerance = 0 }, "tolerance"},
		{"zero queries", func(s *Scenario) { s.Params.Queries = 0 }, "queries"},
		{"too many queries", func(s *Scenario) { s.Params.Queries = MaxQueries + 1 }, "queries"},
		{"wan without rtts", func(s *Scenario) { s.Case = CaseWAN }, "rtts"},
		{"wan rtt too big", func(s *Scenario) { s.Case = CaseWAN; s.Params.RTTs = []Duration{Duration(time.Minute)} }, "rtts[0]"},
		{"rtts on seed", func(s *Scenario) { s.Params.RTTs = []Duration{0} }, "only case wan"},
		{"churn without params", func(s *Scenario) { s.Case = CaseChurn }, "params.churn"},
		{"churn rate 0", func(s *Scenario) { s.Case = CaseChurn; s.Params.Churn = &Churn{MaxDown: 1} }, "rate"},
		{"churn crash over 1", func(s *Scenario) { s.Case = CaseChurn; s.Params.Churn = &Churn{Rate: 1, MaxDown: 1, Crash: 1.5} }, "crash"},
		{"churn arrive negative", func(s *Scenario) { s.Case = CaseChurn; s.Params.Churn = &Churn{Rate: 1, MaxDown: 1, Arrive: -0.1} }, "arrive"},
		{"churn everyone down", func(s *Scenario) { s.Case = CaseChurn; s.Params.Churn = &Churn{Rate: 1, MaxDown: 4} }, "max_down"},
		{"valid churn tolerate", func(s *Scenario) {
			s.Case, s.Params.Tolerate, s.Params.Queries = CaseChurn, 1, 10
			s.Params.Churn = &Churn{Rate: 0.5, MaxDown: 2, BeyondFrom: 8}
		}, ""},
		{"tolerate negative", func(s *Scenario) { s.Params.Tolerate = -1 }, "params.tolerate"},
		{"tolerate every holder but one", func(s *Scenario) { s.Params.Tolerate = 3 }, "params.tolerate"},
		{"beyond_from without tolerate", func(s *Scenario) {
			s.Case, s.Params.Queries, s.Params.Churn = CaseChurn, 10, &Churn{Rate: 1, MaxDown: 2, BeyondFrom: 5}
		}, "beyond_from"},
		{"beyond_from past the queries", func(s *Scenario) {
			s.Case, s.Params.Tolerate, s.Params.Queries = CaseChurn, 1, 10
			s.Params.Churn = &Churn{Rate: 1, MaxDown: 2, BeyondFrom: 10}
		}, "beyond_from"},
		{"beyond_from with max_down within tolerance", func(s *Scenario) {
			s.Case, s.Params.Tolerate, s.Params.Queries = CaseChurn, 1, 10
			s.Params.Churn = &Churn{Rate: 1, MaxDown: 1, BeyondFrom: 5}
		}, "max_down"},
		{"churn params on seed", func(s *Scenario) { s.Params.Churn = &Churn{Rate: 1, MaxDown: 1} }, "only case churn"},
		{"no ready timeout", func(s *Scenario) { s.Timeouts.Ready = 0 }, "timeouts.ready"},
		{"huge total timeout", func(s *Scenario) { s.Timeouts.Total = Duration(2 * time.Hour) }, "timeouts.total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validScenario()
			tt.mutate(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	good, err := json.Marshal(validScenario())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(good)
	if err != nil {
		t.Fatalf("Parse(valid) = %v", err)
	}
	if s.Params.Holders != 4 || s.Timeouts.Query.D() != time.Minute {
		t.Fatalf("Parse lost fields: %+v", s)
	}
	bad := []struct {
		name, in, want string
	}{
		{"not json", "plan: grid", "decode"},
		{"unknown field", strings.Replace(string(good), `"plan"`, `"plann":"x","plan"`, 1), "unknown field"},
		{"trailing object", string(good) + "{}", "trailing"},
		{"bad duration", strings.Replace(string(good), `"1m0s"`, `"soon"`, 1), "duration"},
		{"numeric duration", strings.Replace(string(good), `"1m0s"`, `60`, 1), "duration"},
		{"too big", strings.Repeat(" ", MaxScenarioSize+1), "over"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestShippedScenarios loads every scenario under scripts/scenarios: they must
// all be valid, each named after its case (CASE.json, or CASE-VARIANT.json),
// and the four cases must all be there.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		base := strings.TrimSuffix(filepath.Base(f), ".json")
		if c, _, _ := strings.Cut(base, "-"); c != s.Case {
			t.Errorf("%s: case %q does not match the file name", f, s.Case)
		}
		seen[s.Case] = true
	}
	for _, c := range Cases {
		if !seen[c] {
			t.Errorf("no scenario file for case %s in %s", c, scenarioDir)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.json")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestWithNodesAndHolders(t *testing.T) {
	s := validScenario()
	s.Case = CaseScale
	s.Instances = []int{10, 20}
	n := s.WithNodes(7).WithHolders(3)
	if len(n.Instances) != 1 || n.Instances[0] != 7 || n.Params.Holders != 3 {
		t.Fatalf("got instances %v holders %d", n.Instances, n.Params.Holders)
	}
	if len(s.Instances) != 2 || s.Params.Holders != 4 {
		t.Fatal("WithNodes/WithHolders changed the original")
	}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse checks Parse never panics and that whatever it accepts is valid
// and survives a JSON round trip.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(scenarioDir, "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"plan":"grid","case":"wan","params":{"rtts":["-1s"]}}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid scenario: %v", err)
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal accepted scenario: %v", err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("round trip of an accepted scenario fails: %v", err)
		}
	})
}
