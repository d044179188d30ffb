package faults

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/onnx"
)

func TestParseMetric(t *testing.T) {
	text := "# TYPE go_goroutines gauge\ngo_goroutines 92\ngrid_bytes_received_total{protocol=\"mpc\"} 1.5e+06\n"
	tests := []struct {
		series string
		want   float64
	}{
		{"go_goroutines", 92},
		{`grid_bytes_received_total{protocol="mpc"}`, 1.5e6},
		{`grid_bytes_received_total{protocol="shares"}`, 0},
	}
	for _, tc := range tests {
		if got, err := ParseMetric(text, tc.series); err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.series, got, err, tc.want)
		}
	}
	if _, err := ParseMetric("go_goroutines many\n", "go_goroutines"); err == nil {
		t.Error("a bad value parsed")
	}
}

func TestMatMulONNXImports(t *testing.T) {
	b, err := MatMulONNX(16, 8)
	if err != nil {
		t.Fatal(err)
	}
	p, w, err := onnx.ImportBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Weights) != 1 || !slices.Equal(w[p.Weights[0].Name].Shape, []int{16, 8}) {
		t.Fatalf("weights %v", p.Weights)
	}
}

func TestSetSessionTimeoutAndWAL(t *testing.T) {
	repo := t.TempDir()
	cfg := `{"Identity": {"PeerID": "x"}, "Sessions": {"Max": 7}}`
	if err := os.WriteFile(filepath.Join(repo, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetSessionTimeout(repo, 6e9); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(repo, "config"))
	for _, want := range []string{`"Timeout": "6s"`, `"Max": 7`, `"PeerID": "x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %s:\n%s", want, b)
		}
	}
	if st, _ := os.Stat(filepath.Join(repo, "config")); st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", st.Mode())
	}
	if err := os.MkdirAll(filepath.Join(repo, "datastore"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"000002.log": "aaa/73656564/bbb", "000004.log": "zz", "000005.sst": "73656564"} {
		if err := os.WriteFile(filepath.Join(repo, "datastore", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fn, off, err := FindInWAL(repo, "73656564")
	if err != nil || filepath.Base(fn) != "000002.log" || off != 4 {
		t.Fatalf("FindInWAL = %s %d %v", fn, off, err)
	}
	if _, _, err := FindInWAL(repo, "nothere"); err == nil {
		t.Fatal("found a missing needle")
	}
}
