package harness

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseMetric(t *testing.T) {
	text := "# HELP grid_sessions_active x\n# TYPE go_goroutines gauge\ngo_goroutines 92\ngrid_sessions_active 3\n" +
		"grid_bytes_received_total{protocol=\"mpc\"} 1.5e+06\ngrid_sessions_ok_total{role=\"holder\"} 12\n"
	tests := []struct {
		series string
		want   float64
	}{
		{"go_goroutines", 92},
		{"grid_sessions_active", 3},
		{`grid_bytes_received_total{protocol="mpc"}`, 1.5e6},
		{`grid_sessions_ok_total{role="holder"}`, 12},
		{`grid_bytes_received_total{protocol="shares"}`, 0},
		{"grid_sessions", 0}, // a prefix of a series is not that series
		{"absent", 0},
	}
	for _, tc := range tests {
		if got, err := ParseMetric(text, tc.series); err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.series, got, err, tc.want)
		}
	}
	for _, bad := range []string{"go_goroutines many\n", "go_goroutines \n"} {
		if _, err := ParseMetric(bad, "go_goroutines"); err == nil {
			t.Errorf("%q: a bad value parsed", bad)
		}
	}
}

func FuzzParseMetric(f *testing.F) {
	f.Add("go_goroutines 92\n", "go_goroutines")
	f.Add("x{a=\"b\"} NaN\n", `x{a="b"}`)
	f.Add("x 1e999\nx 2\n", "x")
	f.Fuzz(func(t *testing.T, text, series string) {
		v, err := ParseMetric(text, series)
		if err != nil && v != 0 {
			t.Fatalf("error %v with value %v", err, v)
		}
	})
}

func TestGetAndMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathMetrics:
			w.Write([]byte("grid_sessions_active 2\n"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		case "/long-error":
			http.Error(w, strings.Repeat("e", 4<<10), http.StatusBadGateway)
		case "/broken":
			http.Error(w, "broken on purpose", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	if v, err := Metric(ctx, addr, "grid_sessions_active"); err != nil || v != 2 {
		t.Errorf("Metric = %v, %v; want 2", v, err)
	}
	if b, err := Get(ctx, addr, "/big", 10); err != nil || len(b) != 10 {
		t.Errorf("Get capped at 10 bytes = %d bytes, %v", len(b), err)
	}
	var se *StatusError
	if _, err := Get(ctx, addr, "/nothing", 1<<10); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("Get of a missing path: %v; want a 404 StatusError", err)
	}
	_, err := Get(ctx, addr, "/broken", 1<<10)
	if !errors.As(err, &se) || se.Code != http.StatusInternalServerError || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("Get of a failing path: %v; want a 500 StatusError naming the body", err)
	}
	if _, err := Get(ctx, addr, "/long-error", 1<<20); !errors.As(err, &se) || len(se.Body) != maxErrorBody {
		t.Errorf("Get of a long error answer: %v; want a StatusError with %d bytes of body", err, maxErrorBody)
	}
	if _, err := Metric(ctx, "127.0.0.1:1", "x"); err == nil {
		t.Error("Metric of a closed port succeeded")
	}
}
