package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	onnxpb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// TestVersion checks grid version, grid --version and grid version --json.
func TestVersion(t *testing.T) {
	code, text, stderr := runCLI(t, nil, "version")
	if code != 0 || stderr != "" {
		t.Fatalf("grid version: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"grid " + version + "\n", "\ncommit ", "\ngo " + runtime.Version() + " ",
		"\nprotocol infer     /grid/infer/1.0.0\n", "\nprotocol mpc       /grid/mpc/1.0.0\n", "\nprotocol dht       /grid/kad/1.0.0\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("grid version printed %q, lacks %q", text, want)
		}
	}
	code, flag, _ := runCLI(t, nil, "--version")
	if code != 0 || flag != text {
		t.Errorf("grid --version: exit %d, %q; want grid version's %q", code, flag, text)
	}
	code, js, _ := runCLI(t, nil, "version", "--json")
	var v versionView
	if code != 0 || json.Unmarshal([]byte(js), &v) != nil || v.Version != version || v.Commit == "" ||
		v.Go != runtime.Version() || v.Protocols["shares"] != "/grid/shares/1.0.0" {
		t.Errorf("grid version --json: exit %d, %q", code, js)
	}
}

// TestMain runs the grid command itself when GRID_TEST_MAIN is set: the
// test binary is then a grid process, whose real stderr tests can read
// (library loggers write to the process's stderr, not to run's).
func TestMain(m *testing.M) {
	if os.Getenv("GRID_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// gridProcess runs the test binary as grid with args and returns its exit
// code, stdout and stderr.
func gridProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GRID_TEST_MAIN=1", "GOLOG_LOG_LEVEL=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestOps checks grid ops (text and --json) and that the importer's
// "unsupported op" error points to it.
func TestOps(t *testing.T) {
	code, text, stderr := runCLI(t, nil, "ops")
	if code != 0 || stderr != "" {
		t.Fatalf("grid ops: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"OP ", "EVALUATED", "APPROX", "\nConv ", "\nRelu ", "\nMatMul ", "2-D only"} {
		if !strings.Contains(text, want) {
			t.Errorf("grid ops printed %q, lacks %q", text, want)
		}
	}
	code, js, _ := runCLI(t, nil, "ops", "--json")
	var ops []struct {
		Op           string `json:"op"`
		Secure       bool   `json:"secure"`
		Folded       bool   `json:"folded"`
		Approximated bool   `json:"approximated"`
		Limits       string `json:"limits"`
	}
	if code != 0 || json.Unmarshal([]byte(js), &ops) != nil || len(ops) < 20 {
		t.Fatalf("grid ops --json: exit %d, %q", code, js)
	}
	for _, o := range ops {
		if o.Op == "Relu" && (!o.Secure || o.Approximated) || o.Op == "Constant" && (o.Secure || !o.Folded) {
			t.Errorf("grid ops --json: %+v", o)
		}
	}

	// A model with a Softmax: refused at import, pointing to grid ops.
	g := &onnxpb.GraphProto{
		Name:   "g",
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", 2)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", 2)},
		Node:   []*onnxpb.NodeProto{{OpType: "Softmax", Name: "sm", Input: []string{"x"}, Output: []string{"y"}}},
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}, Graph: g})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "softmax.onnx")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo, _ := initRepo(t)
	code, stdout, stderr := runCLI(t, nil, "publish", file, "--id", "sm", "--repo", repo)
	want := "grid: import " + file + `: unsupported op Softmax (node sm) (see "grid ops" for the supported ONNX ops)` + "\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("publish of a Softmax model: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, want)
	}
}

func valueInfo(name string, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: 1, Shape: shape}}}}
}
