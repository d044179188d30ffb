package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	onnxpb "github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/gridmpc/grid/node"
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

	// A model with an op no importer knows: refused at import, pointing to grid ops.
	g := &onnxpb.GraphProto{
		Name:   "g",
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", 2)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", 2)},
		Node:   []*onnxpb.NodeProto{{OpType: "Frobnicate", Name: "fr", Input: []string{"x"}, Output: []string{"y"}}},
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}, Graph: g})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "frob.onnx")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo, _ := initRepo(t)
	code, stdout, stderr := runCLI(t, nil, "publish", file, "--id", "fr", "--repo", repo)
	want := "grid: import " + file + `: unsupported op Frobnicate (node fr) (see "grid ops" for the supported ONNX ops)` + "\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("publish of a model with an unknown op: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, want)
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

// TestOfflineHolderError checks that a session error from a holder the
// client could not reach says the holder is offline, and keeps the chain.
func TestOfflineHolderError(t *testing.T) {
	id, err := peer.Decode("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")
	if err != nil {
		t.Fatal(err)
	}
	pe := &node.PeerError{Peer: id, Role: "holder 2", Err: fmt.Errorf("unreachable: %w", routing.ErrNotFound)}
	err = offlineError(fmt.Errorf("infer convnet: %w", pe))
	want := "infer convnet: holder 2 " + id.String() + " is offline (unreachable: routing: not found)"
	if err.Error() != want || !errors.Is(err, routing.ErrNotFound) {
		t.Errorf("offlineError = %q, want %q (chain kept)", err, want)
	}
	busy := fmt.Errorf("infer convnet: %w", &node.PeerError{Peer: id, Role: "holder 1", Err: node.ErrBusy})
	if got := offlineError(busy); got != busy {
		t.Errorf("offlineError changed a busy holder's error: %q", got)
	}
}

// TestReadableOutput checks the classifier rows, shapes printed as [N,
// 64] in errors, short peer IDs in logs, nearest model ids and demo's help.
func TestReadableOutput(t *testing.T) {
	var b strings.Builder
	writeOutput(&b, []int{2, 3}, []float64{0.1, 2, -1, 5, 5, 1})
	if want := "sample 0: class 1  [0.1, 2, -1]\nsample 1: class 0  [5, 5, 1]\n"; b.String() != want {
		t.Errorf("classifier rows %q, want %q", b.String(), want)
	}
	b.Reset()
	writeOutput(&b, []int{1}, []float64{1022})
	if b.String() != "[1022]\n" {
		t.Errorf("seed output %q, want [1022]", b.String())
	}

	if got := commaShapes("input shape [5 63] does not fit [N 64] or [-1 64]; values [1 2]x"); got != "input shape [5, 63] does not fit [N, 64] or [N, 64]; values [1, 2]x" {
		t.Errorf("commaShapes: %q", got)
	}
	file := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(file, []byte(`{"shape": [2, 3], "data": [1]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "infer", "convnet", "--input", file)
	if code != exitUsage || !strings.Contains(stderr, "shape [2, 3] holds 6 values, got 1") {
		t.Errorf("bad input file: exit %d, stderr %q", code, stderr)
	}

	self := "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	remote, _ := peer.Decode("12D3KooWQ1UTdUDsF4NGHHejrGhjA6fdQqF9TR1aLkb2kj3P9mLZ")
	var logs strings.Builder
	newLogger(&logs, slog.LevelInfo, false).With("peer", self).Info("stream", "remote", remote, "owner", self)
	if line := logs.String(); !strings.HasSuffix(line, " level=INFO msg=stream peer=12*3P9mLZ owner=12*x6nXTN\n") {
		t.Errorf("daemon log line %q: want one peer= key and short IDs", line)
	}
	logs.Reset()
	newLogger(&logs, slog.LevelInfo, true).With("peer", self).Info("x", "peer", remote)
	if !strings.HasSuffix(logs.String(), " msg=x node=12*x6nXTN peer=12*3P9mLZ\n") {
		t.Errorf("demo log line %q: want node= and peer=", logs.String())
	}

	for _, tc := range []struct{ name, want string }{
		{"convnett", "convnet"}, {"Convnet", "convnet"}, {"digit", "digits"}, {"zzz", ""}, {"convnet", ""}, {"dgts", ""},
	} {
		if got := nearest(tc.name, []string{"digits", "convnet", "convnet-plain"}); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}

	code, help, _ := runCLI(t, nil, "demo", "--help")
	if code != 0 || strings.Contains(help, "--repo") || !strings.Contains(help, "--timeout") {
		t.Errorf("demo --help: exit %d, lists --repo or lacks --timeout: %q", code, help)
	}
	if _, rootHelp, _ := runCLI(t, nil, "--help"); !strings.Contains(rootHelp, "--repo") {
		t.Errorf("grid --help lost --repo: %q", rootHelp)
	}
}

// TestLogGate checks that the daemon's start logs wait for its banner.
func TestLogGate(t *testing.T) {
	var b strings.Builder
	g := &gate{w: &b}
	logger := newLogger(g, slog.LevelInfo, false)
	logger.Info("manifest accepted", "id", "convnet")
	if b.Len() != 0 {
		t.Fatalf("log written before the gate opened: %q", b.String())
	}
	b.WriteString("daemon is ready\n")
	g.open()
	logger.Info("later")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || lines[0] != "daemon is ready" || !strings.HasSuffix(lines[1], `msg="manifest accepted" id=convnet`) || !strings.HasSuffix(lines[2], "msg=later") {
		t.Errorf("gated logs %q: want the banner, the held line, the later one", lines)
	}
}
