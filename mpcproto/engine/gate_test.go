package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
)

// TestTruncReluGate: with two parties the fused gate returns t =
// trunc(z) (floor(z/2^f) or one more) and relu(t), exactly t where z >= 0
// and 0 where z < 0, in one round, for z over the truncation's whole range
// |z| < 2^62 (its edges, around 0, and random magnitudes), and agrees
// with the carry circuit's truncRelu (N = 3) on the same values up to the
// truncations' rounding.
func TestTruncReluGate(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 2))
	const size = 600
	z := make([]int64, size)
	for i := range z {
		switch i % 6 {
		case 0:
			z[i] = r.Int64N(1<<62) - 1<<61
		case 1:
			z[i] = r.Int64N(1<<36) - 1<<35
		case 2:
			z[i] = int64(i/6) - 50 // around 0, below one unit (2^16)
		case 3:
			z[i] = (1<<62 - 1) - int64(i) // the top of the range
		case 4:
			z[i] = -(1<<62 - 1) + int64(i) // the bottom
		default:
			z[i] = (int64(i) - 300) << 16 // exact multiples of a unit
		}
	}
	raw := make([]uint64, size)
	for i, v := range z {
		raw[i] = uint64(v)
	}
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
