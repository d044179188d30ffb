package faults

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gridmpc/grid/mpcproto/onnx"
)

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

func TestFindInWAL(t *testing.T) {
	repo := t.TempDir()
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
