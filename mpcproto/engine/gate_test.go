package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
)

// TestTruncReluGate: with two parties the fused gate returns t =
// trunc(z) (floor(z/2^f) or one more) and relu(t), exactly t where z >= 0
// and 0 where z < 0, in one round, for z over the truncation's whole range
// |z| < 2^62 (truncInputs: its edges, around 0 below one unit, random
// magnitudes), as the carry circuit's truncRelu (N = 3) does.
func TestTruncReluGate(t *testing.T) {
	const size = 800
	z, raw := truncInputs(rand.New(rand.NewPCG(14, 2)), size)
	for _, n := range []int{2, 3} {
		sched := []dealer.Request{{Kind: dealer.KindTrunc, N: size}, {Kind: dealer.KindSign, N: size}}
		if dealer.UsesFSS(n) {
			sched = []dealer.Request{{Kind: dealer.KindTruncReluGate, N: size}}
		}
		shares := splitRaw(t, raw, n)
		ts, ys := make([][]uint64, n), make([][]uint64, n)
		ps := runParties(t, n, sched, func(p *party) error {
			var err error
			ts[p.self], ys[p.self], err = p.truncRelu(shares[p.self])
			return err
		})
		tv, yv := sum(ts), sum(ys)
		for i, v := range z {
			floor := v >> 16
			if d := int64(tv[i]) - floor; d != 0 && d != 1 {
				t.Fatalf("N=%d: trunc(%d) = %d, want %d or %d", n, v, int64(tv[i]), floor, floor+1)
			}
			want := tv[i]
			if v < 0 {
				want = 0
			}
			if yv[i] != want {
				t.Fatalf("N=%d: relu(trunc(%d)) = %d, want %d (trunc %d)", n, v, int64(yv[i]), int64(want), int64(tv[i]))
			}
		}
		if rounds := map[bool]int{true: 1, false: 2 + dealer.SignLevels}[dealer.UsesFSS(n)]; ps[0].round != rounds {
			t.Errorf("N=%d: %d rounds, want %d", n, ps[0].round, rounds)
		}
	}
}
