package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" valid, else a part of the error
	}{
		{"default", func(*Config) {}, ""},
		{"two holders, batch 8", func(c *Config) { c.Holders, c.Batch = 2, 8 }, ""},
		{"four holders", func(c *Config) { c.Holders = 4 }, "--holders 4"},
		{"batch 2", func(c *Config) { c.Batch = 2 }, "--batch 2"},
		{"seed batch 8", func(c *Config) { c.Model, c.Batch = "seed", 8 }, "one sample"},
		{"one query", func(c *Config) { c.Queries = 1 }, "--queries 1"},
		{"no time", func(c *Config) { c.Timeout = 0 }, "--timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{nil, 0.5, 0},
		{[]float64{3}, 0.9, 3},
		{[]float64{5, 1, 3, 2, 4}, 0.5, 3},
		{[]float64{5, 1, 3, 2, 4, 6, 7, 8, 9, 10}, 0.9, 9},
		{[]float64{2, 1}, 0.5, 1},
	} {
		if got := quantile(tc.xs, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
}

// TestModelFiles checks the inputs written for the named models: the
// seed's 5,3 and the digits samples repeated up to the batch.
func TestModelFiles(t *testing.T) {
	for _, tc := range []struct {
		model string
		batch int
		shape []int
	}{
		{"seed", 1, []int{2}},
		{"digits-mlp", 8, []int{8, 64}},
		{"digits-cnn", 1, []int{1, 1, 8, 8}},
	} {
		dir := t.TempDir()
		cfg := DefaultConfig()
		cfg.Model, cfg.Batch, cfg.Root = tc.model, tc.batch, filepath.Join("..", "..")
		file, input, err := modelFiles(cfg, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(file); err != nil {
			t.Fatal(err)
		}
		x, err := tensorio.ReadFile(input)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x.Shape, tc.shape) {
			t.Fatalf("%s: input shape %v, want %v", tc.model, x.Shape, tc.shape)
		}
	}
	x := &tensor.Dense[float64]{Shape: []int{2, 1}, Data: []float64{1, 2}}
	if r := repeatRows(x, 3); !slices.Equal(r.Shape, []int{3, 1}) || r.Data[2] != 1 {
		t.Fatalf("repeatRows: %v %v", r.Shape, r.Data)
	}
	if _, _, err := modelFiles(Config{Model: "model.txt", Batch: 1}, t.TempDir()); err == nil {
		t.Fatal("a model that is no .onnx file was taken")
	}
}

// TestRunSeed runs the whole benchmark on the seed model between real
// daemons (two holders, two queries): the report's figures are there.
func TestRunSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grid and starts daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Model, cfg.Holders, cfg.Queries, cfg.Root, cfg.NoTorch = "seed", 2, 2, filepath.Join("..", ".."), true
	var log bytes.Buffer
	rep, err := Run(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if rep.FirstMs <= 0 || rep.SteadyMs[0] <= 0 || rep.FirstMaskOpens != 0 || len(rep.HolderBytes) != 2 ||
		rep.HolderBytes[0].Recv <= 0 || rep.DealerBytes.Sent <= 0 || len(rep.PeakRSS) != 3 || rep.PeakRSS[1] <= 0 {
		t.Fatalf("report %+v", rep)
	}
	var out bytes.Buffer
	rep.Print(&out)
	if !strings.Contains(out.String(), "first query") {
		t.Fatalf("text report:\n%s", out.String())
	}
}
