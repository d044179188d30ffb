package swarm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestModelsListName(t *testing.T) {
	tests := []struct {
		body string
		want bool
		ok   bool
	}{
		{`[{"id":"convnet"}]`, true, true},
		{`{"models":[{"ID":"convnet","owner":"x"}]}`, true, true},
		{`{"models":[{"id":"other"}]}`, false, true},
		{`[]`, false, true},
		{`{"id":"convnet-plain"}`, false, true},
		{`[{"id":`, false, false},
	}
	for _, tt := range tests {
		got, err := modelsListName([]byte(tt.body), "convnet")
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("modelsListName(%s) = %v, %v; want %v, ok %v", tt.body, got, err, tt.want, tt.ok)
		}
	}
}

func TestSumMetric(t *testing.T) {
	body := `# HELP grid_discovery_manifests_accepted_total Manifests accepted.
# TYPE grid_discovery_manifests_accepted_total counter
grid_discovery_manifests_accepted_total{source="pubsub"} 1
grid_discovery_manifests_accepted_total{source="sync",x="a}b"} 2
grid_discovery_manifests_accepted_total_extra 100
grid_discovery_manifests_accepted_totalx{source="y"} 100
other 7
`
	sum, found, err := sumMetric([]byte(body), metricAccepted)
	if err != nil || !found || sum != 3 {
		t.Fatalf("sumMetric = %v, %v, %v; want 3", sum, found, err)
	}
	if _, found, err := sumMetric([]byte("other 1\n"), metricAccepted); found || err != nil {
		t.Fatalf("absent metric: found %v, %v", found, err)
	}
	for _, bad := range []string{metricAccepted + `{a="b" 1`, metricAccepted + " x", metricAccepted + "{}", metricAccepted + " NaN"} {
		if _, _, err := sumMetric([]byte(bad), metricAccepted); err == nil {
			t.Errorf("sumMetric(%q) accepted", bad)
		}
	}
}

func FuzzSumMetric(f *testing.F) {
	f.Add([]byte(metricAccepted + `{source="pubsub"} 1` + "\n"))
	f.Add([]byte("# HELP x\n" + metricAccepted + " 2e3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, found, err := sumMetric(b, metricAccepted)
		if err != nil && (found || sum != 0) {
			t.Fatalf("error %v with found=%v sum=%v", err, found, sum)
		}
	})
}

func FuzzModelsListName(f *testing.F) {
	f.Add([]byte(`{"models":[{"id":"convnet"}]}`))
	f.Add([]byte(`[[[[[[[[[[[{"id":"convnet"}]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = modelsListName(b, "convnet")
	})
}

// TestListed covers the three ways a daemon answers: a models API, only
// the metric, or neither.
func TestListed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v0/models", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[{"id":"m"}]`)) })
	withAPI := httptest.NewServer(mux)
	defer withAPI.Close()
	mux2 := http.NewServeMux()
	mux2.HandleFunc(pathMetrics, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(metricAccepted + `{source="pubsub"} 1` + "\n"))
	})
	withMetric := httptest.NewServer(mux2)
	defer withMetric.Close()
	mux3 := http.NewServeMux()
	mux3.HandleFunc(pathMetrics, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("go_goroutines 9\n")) })
	neither := httptest.NewServer(mux3)
	defer neither.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	ctx := context.Background()

	if ok, how, err := listed(ctx, addr(withAPI), "m", 1); !ok || how != methodAPI || err != nil {
		t.Errorf("api: %v %q %v", ok, how, err)
	}
	if ok, _, _ := listed(ctx, addr(withAPI), "n", 1); ok {
		t.Error("api lists a model it does not have")
	}
	if ok, how, err := listed(ctx, addr(withMetric), "m", 1); !ok || how != methodMetrics || err != nil {
		t.Errorf("metrics: %v %q %v", ok, how, err)
	}
	if ok, _, _ := listed(ctx, addr(withMetric), "m", 2); ok {
		t.Error("metrics: 1 accepted counts as 2 published")
	}
	if _, _, err := listed(ctx, addr(neither), "m", 1); !errors.Is(err, errNotObservable) {
		t.Errorf("neither: %v, want errNotObservable", err)
	}
	if _, _, err := listed(ctx, "", "m", 1); !errors.Is(err, errNotObservable) {
		t.Errorf("no API: %v, want errNotObservable", err)
	}
}

func TestAcceptedLine(t *testing.T) {
	const line = `time=2026-11-27T09:12:47.322Z level=INFO msg="manifest accepted" peer=12D3KooWDq component=discovery self=12D3KooWDq id=convnet owner=12D3KooWFB version=17 deleted=false source=push from=12D3KooWFB`
	at, ok := acceptedLine(line, "convnet")
	want := time.Date(2026, 11, 27, 9, 12, 47, 322e6, time.UTC)
	if !ok || !at.Equal(want) {
		t.Fatalf("acceptedLine = %v, %v; want %v", at, ok, want)
	}
	for _, tt := range []struct{ line, name string }{
		{line, "convnet-plain"},
		{strings.Replace(line, "accepted", "refused", 1), "convnet"},
		{strings.Replace(line, "time=2026-11-27T09:12:47.322Z", "time=yesterday", 1), "convnet"},
		{strings.Replace(line, "time=2026-11-27T09:12:47.322Z ", "", 1), "convnet"},
		{"", "convnet"},
	} {
		if _, ok := acceptedLine(tt.line, tt.name); ok {
			t.Errorf("acceptedLine(%.60q, %s) matched", tt.line, tt.name)
		}
	}
}

func TestLogAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node0.log")
	old := `time=2026-11-27T09:00:00.000Z level=INFO msg="manifest accepted" id=convnet source=store`
	fresh := `time=2026-11-27T09:12:47.322Z level=INFO msg="manifest accepted" id=convnet source=pubsub`
	if err := os.WriteFile(path, []byte("noise\n"+old+"\n"+strings.Repeat("x", 2<<20)+"\n"+fresh+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 11, 27, 9, 12, 0, 0, time.UTC)
	at, ok, err := logAccepted(path, "convnet", since)
	if err != nil || !ok || at.Minute() != 12 {
		t.Fatalf("logAccepted = %v, %v, %v; want the 09:12 line", at, ok, err)
	}
	if _, ok, err := logAccepted(path, "convnet", since.Add(time.Hour)); ok || err != nil {
		t.Fatalf("a line before since counted: %v %v", ok, err)
	}
	if _, _, err := logAccepted(filepath.Join(t.TempDir(), "none.log"), "convnet", since); err == nil {
		t.Fatal("missing log gave no error")
	}
}

func FuzzAcceptedLine(f *testing.F) {
	f.Add(`time=2026-11-27T09:12:47.322Z level=INFO msg="manifest accepted" id=convnet`)
	f.Add(`msg="manifest accepted" id="convnet" time=x`)
	f.Fuzz(func(t *testing.T, line string) {
		if at, ok := acceptedLine(line, "convnet"); ok && at.IsZero() {
			t.Fatal("matched without a time")
		}
	})
}
