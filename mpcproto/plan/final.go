package plan

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Finish applies the plan's client-side final op (Final), if any, to an
// output y the client has reconstructed, in place: what the client does
// after adding the holders' output shares (EvalPlain applies it too, so
// the twin is the model's function). The holders never compute it.
func (p *Plan) Finish(y *tensor.Dense[float64]) error {
	f := p.Final
	if f == nil {
		return nil
	}
	if y == nil || len(y.Data) != tensor.Size(y.Shape) || f.Axes[len(f.Axes)-1] >= len(y.Shape) {
		return fmt.Errorf("final %s: output shape %v", f.Op, shapeOf(y))
	}
	inner := tensor.Size(y.Shape[f.Axes[0]:])
	if tensor.Size(y.Shape[f.Axes[len(f.Axes)-1]+1:]) != 1 {
		return fmt.Errorf("final %s: axes %v are not the trailing axes of output shape %v", f.Op, f.Axes, y.Shape)
	}
	for o := 0; o < len(y.Data); o += inner {
		row := y.Data[o : o+inner]
		top := slices.Max(row)
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v - top)
		}
		for i, v := range row {
			if f.Op == FinalLogSoftmax {
				row[i] = v - top - math.Log(sum)
			} else {
				row[i] = math.Exp(v-top) / sum
			}
		}
	}
	return nil
}

func shapeOf(y *tensor.Dense[float64]) []int {
	if y == nil {
		return nil
	}
	return y.Shape
}

// Summary describes a plan for listings: its number of ops (nodes, and
// the client-side final op) and the ops computed otherwise than exactly,
// in plan order without repeats: "Sigmoid≈", "SiLU≈" (approximated by the
// secure engine, see Approximated) and "Softmax (client)" (a final op the
// client applies).
func (p *Plan) Summary() (ops int, approximated []string) {
	seen := map[Op]bool{}
	for _, n := range p.Nodes {
		if _, ok := Approximated[n.Op]; ok && !seen[n.Op] {
			seen[n.Op] = true
			approximated = append(approximated, string(n.Op)+"≈")
		}
	}
	ops = len(p.Nodes)
	if p.Final != nil {
		ops++
		approximated = append(approximated, p.Final.Op+" (client)")
	}
	return ops, approximated
}

// OpCounts counts the plan's nodes by op (and the final op, by name), in
// a stable order: most frequent first, then by name.
func (p *Plan) OpCounts() []string {
	count := map[string]int{}
	for _, n := range p.Nodes {
		count[string(n.Op)]++
	}
	if p.Final != nil {
		count[p.Final.Op+" (client)"]++
	}
	names := make([]string, 0, len(count))
	for k := range count {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = fmt.Sprintf("%s %d", k, count[k])
	}
	return out
}
