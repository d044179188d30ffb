package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// runParties runs fn for n parties over an in-memory network with material
// dealt for sched, and returns the parties (for their round counts).
func runParties(t *testing.T, n int, sched []dealer.Request, fn func(p *party) error) []*party {
	t.Helper()
	parties, errs := runPartiesOn(t, transport.NewNetwork(n), sched, fn)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("party %d: %v", i, err)
		}
	}
	return parties
}

// runPartiesOn is runParties over nw, returning every party's error.
func runPartiesOn(t *testing.T, nw *transport.Network, sched []dealer.Request, fn func(p *party) error) ([]*party, []error) {
	t.Helper()
	n, enc := nw.Parties(), fixed.Default()
	srcs, err := dealer.NewSources(sched, n, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	parties := make([]*party, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		parties[i] = &party{ctx: ctx, cancel: cancel, t: nw.Transport(i), n: n, self: i, enc: enc, src: srcs[i],
			gates: dealer.UsesFSS(n)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(parties[i])
		}()
	}
	wg.Wait()
	return parties, errs
}

// splitRaw shares raw ring values among n parties.
func splitRaw(t *testing.T, v []uint64, n int) [][]uint64 {
	t.Helper()
	ss, err := share.Split(&tensor.Dense[uint64]{Shape: []int{len(v)}, Data: v}, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]uint64, n)
	for i, s := range ss {
		out[i] = s.Data
	}
	return out
}

func sum(vs [][]uint64) []uint64 {
	out := make([]uint64, len(vs[0]))
	for _, v := range vs {
		for i, w := range v {
			out[i] += w
		}
	}
	return out
}

// TestTruncErrorBound: for |x| < 2^62 the truncation gives floor(x/2^f) or
// floor(x/2^f) + 1, for N = 2, 3, 4, including values near the edges.
func TestTruncErrorBound(t *testing.T) {
	const size = 4000
	x, raw := truncInputs(rand.New(rand.NewPCG(5, 6)), size)
	for _, n := range []int{2, 3, 4} {
		shares := splitRaw(t, raw, n)
		outs := make([][]uint64, n)
		ps := runParties(t, n, []dealer.Request{{Kind: dealer.KindTrunc, N: size}}, func(p *party) error {
			var err error
			outs[p.self], err = p.trunc(shares[p.self])
			return err
		})
		got := sum(outs)
		for i, v := range x {
			want := v >> 16 // arithmetic shift: floor
			if d := int64(got[i]) - want; d != 0 && d != 1 {
				t.Fatalf("N=%d: trunc(%d) = %d, want %d or %d", n, v, int64(got[i]), want, want+1)
			}
		}
		if ps[0].round != 1 {
			t.Errorf("N=%d: truncation took %d rounds, want 1", n, ps[0].round)
		}
	}
}

// truncInputs are size values over the truncation's range |x| < 2^62:
// random ones of 40 and 62 bits, small ones around 0 and the range's
// edges, as int64 and as ring elements.
func truncInputs(r *rand.Rand, size int) ([]int64, []uint64) {
	x, raw := make([]int64, size), make([]uint64, size)
	for i := range x {
		switch i % 4 {
		case 0:
			x[i] = r.Int64N(1<<40) - 1<<39
		case 1:
			x[i] = r.Int64N(1<<62) - 1<<61
		case 2:
			x[i] = int64(i) - 100
		default:
			x[i] = (1<<62 - 1) - int64(i) // near the top of the range
			if i%8 == 7 {
				x[i] = -x[i]
			}
		}
		raw[i] = uint64(x[i])
	}
	return x, raw
}

// TestReluExact: relu on shares equals max(x, 0) exactly for values over
// the whole signed range, in 2 + SignLevels rounds whatever the size (one
// round with two parties' sign gates).
func TestReluExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{1, 63, 64, 65, 1000} {
		raw := make([]uint64, size)
		for i := range raw {
			switch i % 5 {
			case 0:
				raw[i] = r.Uint64()
			case 1:
				raw[i] = uint64(r.Int64N(2000) - 1000)
			case 2:
				raw[i] = 0
			case 3:
				raw[i] = 1 << 63 // the most negative value
			default:
				raw[i] = 1<<63 - 1 // the most positive
			}
		}
		for _, n := range []int{2, 3, 4} {
			shares := splitRaw(t, raw, n)
			outs := make([][]uint64, n)
			req, rounds := dealer.Request{Kind: dealer.KindSign, N: size}, 2+dealer.SignLevels
			if dealer.UsesFSS(n) {
				req, rounds = dealer.Request{Kind: dealer.KindReluGate, N: size}, 1
			}
			ps := runParties(t, n, []dealer.Request{req}, func(p *party) error {
				var err error
				outs[p.self], err = p.relu(shares[p.self])
				return err
			})
			got := sum(outs)
			for i, v := range raw {
				want := v
				if int64(v) < 0 {
					want = 0
				}
				if got[i] != want {
					t.Fatalf("N=%d size %d: relu(%d) = %d", n, size, int64(v), int64(got[i]))
				}
			}
			if ps[0].round != rounds {
				t.Errorf("N=%d: relu took %d rounds, want %d", n, ps[0].round, rounds)
			}
		}
	}
}

// TestBilinearExact: matrix, convolution and broadcast products on shares
// equal the ring products exactly (before truncation), in one round.
func TestBilinearExact(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	win, _ := tensor.NewWindow([]int{3, 3}, []int{2, 1}, []int{1, 0, 1, 2}, []int{1, 2}, false)
	reqs := []dealer.Request{
		{Kind: dealer.KindMatMul, X: []int{5, 7}, Y: []int{7, 3}},
		{Kind: dealer.KindConv, X: []int{2, 4, 6, 7}, Y: []int{6, 2, 3, 3}, Window: win, Group: 2},
		{Kind: dealer.KindMul, X: []int{3, 1, 4}, Y: []int{5, 1}},
	}
	for _, req := range reqs {
		for _, n := range []int{2, 3, 4} {
			x, y := tensor.New[uint64](req.X...), tensor.New[uint64](req.Y...)
			for i := range x.Data {
				x.Data[i] = r.Uint64()
			}
			for i := range y.Data {
				y.Data[i] = r.Uint64()
			}
			want, err := req.Bilinear(x, y)
			if err != nil {
				t.Fatal(err)
			}
			xs, ys := splitRaw(t, x.Data, n), splitRaw(t, y.Data, n)
			outs := make([][]uint64, n)
			ps := runParties(t, n, []dealer.Request{req}, func(p *party) error {
				z, err := p.bilinear(req, &tensor.Dense[uint64]{Shape: req.X, Data: xs[p.self]},
					&tensor.Dense[uint64]{Shape: req.Y, Data: ys[p.self]})
				if err != nil {
					return err
				}
				outs[p.self] = z.Data
				return nil
			})
			got := sum(outs)
			for i := range got {
				if got[i] != want.Data[i] {
					t.Fatalf("%s N=%d: element %d differs", req, n, i)
				}
			}
			if ps[0].round != 1 {
				t.Errorf("%s: %d rounds, want 1", req, ps[0].round)
			}
		}
	}
}

func TestOpenXorAndArith(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		outs := make([][][]uint64, n)
		runParties(t, n, nil, func(p *party) error {
			var err error
			outs[p.self], err = p.open(arith([]uint64{uint64(p.self + 1)}), xorv([]uint64{1 << p.self}))
			return err
		})
		for i := range n {
			wantSum := uint64(n * (n + 1) / 2)
			wantXor := uint64(1)<<n - 1
			if outs[i][0][0] != wantSum || outs[i][1][0] != wantXor {
				t.Fatalf("N=%d party %d: opened %v", n, i, outs[i])
			}
		}
	}
}

func TestBitHelpers(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for range 1000 {
		x := r.Uint64()
		var want uint64
		for i := range 16 {
			want |= (x >> (4 * i) & 1) << i
		}
		if got := compact4(x); got != want {
			t.Fatalf("compact4(%x) = %x, want %x", x, got, want)
		}
	}
	for _, w := range []int{1, 2, 4, 8, 16, 32, 64} {
		vals := make([]uint64, 37)
		for i := range vals {
			vals[i] = r.Uint64() & (uint64(1)<<w - 1)
			if w == 64 {
				vals[i] = r.Uint64()
			}
		}
		buf := make([]uint64, (37*w+63)/64)
		packBits(buf, vals, w)
		got := make([]uint64, 37)
		unpackBits(got, buf, w)
		for i := range vals {
			if got[i] != vals[i] {
				t.Fatalf("width %d: value %d: %x != %x", w, i, got[i], vals[i])
			}
		}
	}
}
