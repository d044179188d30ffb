package faults

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/onnx"
	"github.com/gridmpc/grid/node"
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

func TestStartClusterFails(t *testing.T) {
	if _, err := StartCluster(context.Background(), "/nonexistent/grid", t.TempDir(), 2, time.Second); err == nil {
		t.Fatal("a cluster of a missing binary")
	}
}

func TestTruncateTablesAndStored(t *testing.T) {
	repo := t.TempDir()
	ds := filepath.Join(repo, node.DatastoreDir)
	if err := os.MkdirAll(ds, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"000005.sst": "12345678", "000007.sst": "1234", "000002.log": "wal"} {
		if err := os.WriteFile(filepath.Join(ds, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := TruncateTables(repo); err != nil || n != 2 {
		t.Fatalf("TruncateTables = %d, %v", n, err)
	}
	for name, size := range map[string]int64{"000005.sst": 4, "000007.sst": 2, "000002.log": 3} {
		if st, err := os.Stat(filepath.Join(ds, name)); err != nil || st.Size() != size {
			t.Fatalf("%s: %v, %v; want %d bytes", name, st, err, size)
		}
	}
	if got, keys, err := Stored(repo, "seed"); err != nil || got.Keys != 0 || keys != 0 {
		t.Fatalf("a datastore no daemon opened: %+v, %d keys, %v", got, keys, err)
	}
	if _, _, err := Stored(filepath.Join(repo, "none"), "seed"); err == nil {
		t.Fatal("read the datastore of a missing repo")
	}
	if n, err := TruncateTables(filepath.Join(repo, "none")); err != nil || n != 0 {
		t.Fatalf("TruncateTables of a repo without tables = %d, %v", n, err)
	}
}
