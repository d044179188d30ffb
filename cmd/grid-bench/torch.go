package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// python is the interpreter with torch (Debian's).
const python = "/usr/bin/python3"

// TorchTime is PyTorch's single-thread time for the model and input, as
// scripts/bench_torch.py measures it.
type TorchTime struct {
	Ms     float64 `json:"ms"`      // CPU time per inference (median)
	WallMs float64 `json:"wall_ms"` // wall time per inference (median)
	// MaxDiff is the largest |PyTorch - grid| over the first 8 outputs.
	MaxDiff float64   `json:"max_diff"`
	Output  []float64 `json:"output"`
}

// torchTime runs scripts/bench_torch.py; without python or torch it
// returns a note saying so.
func torchTime(ctx context.Context, root, file, input string, grid []float64) (*TorchTime, string) {
	if _, err := os.Stat(python); err != nil {
		return nil, python + " not found"
	}
	cmd := exec.CommandContext(ctx, python, filepath.Join(root, "scripts", "bench_torch.py"), file, input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return nil, fmt.Sprintf("scripts/bench_torch.py: %v: %s", err, msg)
	}
	var t TorchTime
	if err := json.Unmarshal(stdout.Bytes(), &t); err != nil {
		return nil, fmt.Sprintf("scripts/bench_torch.py: %v", err)
	}
	for i := range min(len(t.Output), len(grid)) {
		t.MaxDiff = math.Max(t.MaxDiff, math.Abs(t.Output[i]-grid[i]))
	}
	return &t, ""
}
