package attack

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// resolutionUlps is how many units in the last place of the output a row
// of W2 must move the output by between the +M and +2M rows to count as
// identified: below that (a dead unit, or honest bundles, where both rows
// are the same inference) the unit's b1 and W1 column are reported as 0.
const resolutionUlps = 64

// Recover reads every weight and bias off out, the reconstructed and
// decoded output of the session's batch ([Batch, O], in the order of
// Rows). With u_k = y(M) − b2 and v_k = y(2M) − b2 for unit k:
//
//	b2 = y_0,  W2[k,:] = (v_k − u_k)/M,  b1_k = <2u_k − v_k, W2[k,:]>/|W2[k,:]|²,
//	W1[i,k] = <y(e_i, M) − y(M), W2[k,:]>/|W2[k,:]|².
//
// The result is keyed by the plan's weight names. A unit whose recovered
// W2 row is below the outputs' resolution is unidentifiable: its b1 and
// W1 column are 0.
func (s *Session) Recover(out *tensor.Dense[float64]) (plan.Weights, error) {
	net := s.net
	if out == nil || !slices.Equal(out.Shape, []int{s.Batch, net.o}) || len(out.Data) != s.Batch*net.o {
		var shape []int
		if out != nil {
			shape = out.Shape
		}
		return nil, fmt.Errorf("attack: recover: output shape %v, want [%d %d]", shape, s.Batch, net.o)
	}
	for i, v := range out.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("attack: recover: output element %d is %v", i, v)
		}
	}
	y := func(r int) []float64 { return out.Data[r*net.o : (r+1)*net.o] }
	w1, b1 := tensor.New[float64](net.d, net.h), tensor.New[float64](net.h)
	w2, b2 := tensor.New[float64](net.h, net.o), tensor.New[float64](net.o)
	copy(b2.Data, y(0))
	minNorm := resolutionUlps / (s.Enc.Scale() * s.Offset)
	for k := range net.h {
		u := sub(y(1+k), b2.Data)
		v := sub(y(1+net.h+k), b2.Data)
		row := w2.Data[k*net.o : (k+1)*net.o]
		for j := range row {
			row[j] = (v[j] - u[j]) / s.Offset
		}
		n2 := dot(row, row)
		if math.Sqrt(n2) < minNorm {
			clear(row) // indistinguishable from noise: the unit was not moved
			continue
		}
		for j := range u {
			u[j] = 2*u[j] - v[j] // = b1_k·W2[k,:]
		}
		b1.Data[k] = dot(u, row) / n2
		base := y(1 + k)
		for i := range net.d {
			yc := y(1 + 2*net.h + k*net.d + i)
			w1.Data[i*net.h+k] = dot(sub(yc, base), row) / n2
		}
	}
	return plan.Weights{net.w1: w1, net.b1: b1, net.w2: w2, net.b2: b2}, nil
}

func sub(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// Errors is the largest absolute difference between got and want for every
// weight of want, by name. A weight missing from got or of another shape is
// an error.
func Errors(got, want plan.Weights) (map[string]float64, error) {
	out := make(map[string]float64, len(want))
	for name, w := range want {
		g, ok := got[name]
		if !ok || g == nil || w == nil {
			return nil, fmt.Errorf("attack: compare: weight %q is missing", name)
		}
		if !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			return nil, fmt.Errorf("attack: compare: weight %q has shape %v, want %v", name, g.Shape, w.Shape)
		}
		var e float64
		for i := range w.Data {
			e = math.Max(e, math.Abs(g.Data[i]-w.Data[i]))
		}
		out[name] = e
	}
	return out, nil
}

// MaxAbsError is the largest absolute difference between got and want over
// every weight of want, and the name of the weight where it occurs.
func MaxAbsError(got, want plan.Weights) (float64, string, error) {
	errs, err := Errors(got, want)
	if err != nil {
		return 0, "", err
	}
	names := make([]string, 0, len(errs))
	for n := range errs {
		names = append(names, n)
	}
	sort.Strings(names)
	worst, at := 0.0, ""
	for _, n := range names {
		if errs[n] > worst || at == "" {
			worst, at = errs[n], n
		}
	}
	return worst, at, nil
}
