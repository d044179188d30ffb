package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/gridmpc/grid/mpcproto/onnx"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/tensorio"
)

// modelFiles resolves --model to its ONNX file and writes the query's
// input (batch samples) as DIR/input.npy: the seed's 5,3, the first digits
// samples (repeated up to the batch) or a uniform random input in [-1, 1]
// of the file's input shape.
func modelFiles(cfg Config, dir string) (file, input string, err error) {
	td := filepath.Join(cfg.Root, "testdata")
	var x *tensor.Dense[float64]
	switch cfg.Model {
	case "seed":
		file, x = filepath.Join(td, "seed.onnx"), &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}}
	case "digits-mlp", "digits-cnn":
		file = filepath.Join(td, strings.ReplaceAll(cfg.Model, "-", "_")+".onnx")
		sample := filepath.Join(td, map[string]string{"digits-mlp": "digits_sample.npy", "digits-cnn": "digits_sample_cnn.npy"}[cfg.Model])
		if x, err = tensorio.ReadFile(sample); err == nil {
			x = repeatRows(x, cfg.Batch)
		}
	default:
		if !strings.HasSuffix(cfg.Model, ".onnx") {
			return "", "", fmt.Errorf("--model %q: seed, digits-mlp, digits-cnn or an .onnx file", cfg.Model)
		}
		file = cfg.Model
		x, err = randomInput(file, cfg.Batch)
	}
	if err != nil {
		return "", "", fmt.Errorf("input of %s: %w", cfg.Model, err)
	}
	input = filepath.Join(dir, "input.npy")
	if err := os.WriteFile(input, tensorio.EncodeNPY(x), 0o600); err != nil {
		return "", "", fmt.Errorf("input of %s: %w", cfg.Model, err)
	}
	return file, input, nil
}

// repeatRows returns the first n rows of x (along its first axis),
// repeating them when x has fewer.
func repeatRows(x *tensor.Dense[float64], n int) *tensor.Dense[float64] {
	row := len(x.Data) / x.Shape[0]
	out := &tensor.Dense[float64]{Shape: append([]int{n}, x.Shape[1:]...), Data: make([]float64, n*row)}
	for i := range n {
		j := i % x.Shape[0]
		copy(out.Data[i*row:(i+1)*row], x.Data[j*row:(j+1)*row])
	}
	return out
}

// randomInput draws a fixed-seed uniform input in [-1, 1] of the model's
// input shape, its batch axis set to batch.
func randomInput(file string, batch int) (*tensor.Dense[float64], error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, _, err := onnx.ImportBytes(b)
	if err != nil {
		return nil, err
	}
	shape, err := p.InputShape(batch)
	if err != nil {
		return nil, err
	}
	x := tensor.New[float64](shape...)
	rng := rand.New(rand.NewPCG(14, 1))
	for i := range x.Data {
		x.Data[i] = rng.Float64()*2 - 1
	}
	return x, nil
}
