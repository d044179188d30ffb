package share_test

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"testing"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/share"
)

// A plaintext twin of a re-sharing: the secret, its old shares (one copy
// per holder), the messages routed, and each holder's copies after.
type reshareRun struct {
	assign [][]int
	n      int                     // holders
	secret []uint64                // the twin
	old    [][]uint64              // share -> words
	copies []map[int][]uint64      // holder -> share -> new words
	views  []map[[2]int]share.Part // holder -> (contributor, share) -> part received
	errs   []error                 // Add refusals
}

// route delivers contributor c's part of share i to holders; honest is
// the holders of share i.
type router func(assign [][]int, c, i int) []int

func honest(assign [][]int, _, i int) []int { return assign[i] }

// contributor draws a contribution (share.ZeroContribution, or a faulty one).
type contributor func(shares, fix, n int) ([]share.Part, error)

func honestContribution(shares, fix, n int) ([]share.Part, error) {
	return share.ZeroContribution(shares, fix, n, nil)
}

// runReshare re-shares a random secret of words words over assign (n
// holders), every holder contributing, with the given routing and
// contributions.
func runReshare(t *testing.T, assign [][]int, n, words int, route router, contrib contributor) *reshareRun {
	t.Helper()
	r := &reshareRun{assign: assign, n: n, secret: share.NewPRG(mustSeed(t)).Uint64s(words)}
	for i := range assign {
		if i == len(assign)-1 {
			last := slices.Clone(r.secret)
			for _, o := range r.old {
				for k, v := range o {
					last[k] -= v
				}
			}
			r.old = append(r.old, last)
			continue
		}
		r.old = append(r.old, share.NewPRG(mustSeed(t)).Uint64s(words))
	}
	rs := make([]*share.Resharer, n)
	r.views = make([]map[[2]int]share.Part, n)
	for j := range n {
		var err error
		if rs[j], err = share.NewResharer(assign, j, n, words); err != nil {
			t.Fatal(err)
		}
		r.views[j] = map[[2]int]share.Part{}
	}
	for c := range n {
		parts, err := contrib(len(assign), heldBy(assign, c)[0], words)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range parts {
			for _, j := range route(assign, c, i) {
				r.views[j][[2]int{c, i}] = p
				if err := rs[j].Add(c, i, p); err != nil {
					r.errs = append(r.errs, err)
				}
			}
		}
	}
	for j := range n {
		old := map[int][]uint64{}
		for _, i := range heldBy(assign, j) {
			old[i] = r.old[i]
		}
		nw, err := rs[j].Apply(old)
		if err != nil {
			t.Fatalf("holder %d: %v", j, err)
		}
		r.copies = append(r.copies, nw)
	}
	return r
}

func mustSeed(t *testing.T) share.Seed {
	s, err := share.NewSeed(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func heldBy(assign [][]int, j int) []int {
	var out []int
	for i, hs := range assign {
		if slices.Contains(hs, j) {
			out = append(out, i)
		}
	}
	return out
}

// checkSum: every share's copies agree, the new shares add up to the
// secret, and every word of every share changed.
func (r *reshareRun) checkSum() error {
	sum := make([]uint64, len(r.secret))
	for i, hs := range r.assign {
		first := r.copies[hs[0]][i]
		for _, j := range hs[1:] {
			if !slices.Equal(r.copies[j][i], first) {
				return fmt.Errorf("share %d: holders %d and %d have different copies", i, hs[0], j)
			}
		}
		for k, v := range first {
			if v == r.old[i][k] {
				return fmt.Errorf("share %d word %d: unchanged by the re-sharing", i, k)
			}
			sum[k] += v
		}
	}
	if !slices.Equal(sum, r.secret) {
		return errors.New("the new shares do not add up to the secret")
	}
	return nil
}

// checkMixed: for every coalition A of old disks and B of new holders
// that cover every share together but neither alone, the shares B holds
// (new) plus the rest from A (old) add up to something else than the
// secret, in every word.
func (r *reshareRun) checkMixed() (pairs int, err error) {
	covers := func(mask int) bool {
		for _, hs := range r.assign {
			if !slices.ContainsFunc(hs, func(j int) bool { return mask&(1<<j) != 0 }) {
				return false
			}
		}
		return true
	}
	for a := 1; a < 1<<r.n; a++ {
		for b := 1; b < 1<<r.n; b++ {
			if covers(a) || covers(b) || !covers(a|b) {
				continue
			}
			pairs++
			sum := make([]uint64, len(r.secret))
			for i, hs := range r.assign {
				src := r.old[i]
				if j := slices.IndexFunc(hs, func(j int) bool { return b&(1<<j) != 0 }); j >= 0 {
					src = r.copies[hs[j]][i]
				}
				for k, v := range src {
					sum[k] += v
				}
			}
			for k := range sum {
				if sum[k] == r.secret[k] {
					return pairs, fmt.Errorf("old disks %b with new holders %b give the secret's word %d", a, b, k)
				}
			}
		}
	}
	return pairs, nil
}

// checkViews: no holder received a part of a share it does not hold.
func (r *reshareRun) checkViews() error {
	for j, v := range r.views {
		for key := range v {
			if !slices.Contains(r.assign[key[1]], j) {
				return fmt.Errorf("holder %d received contributor %d's part of share %d, which it does not hold", j, key[0], key[1])
			}
		}
	}
	return nil
}

type reshareCase struct {
	name   string
	n      int
	assign [][]int
}

func reshareCases() []reshareCase {
	var out []reshareCase
	for _, nf := range [][2]int{{3, 1}, {4, 1}, {5, 2}, {4, 2}, {5, 1}} {
		n, f := nf[0], nf[1]
		out = append(out,
			reshareCase{fmt.Sprintf("cnf-%d-%d", n, f), n, discovery.CNFShares(n, f)},
			reshareCase{fmt.Sprintf("cyclic-%d-%d", n, f), n, discovery.CyclicShares(n, f)})
	}
	return out
}

func TestReshareAgainstTwin(t *testing.T) {
	for _, tc := range reshareCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := runReshare(t, tc.assign, tc.n, 33, honest, honestContribution)
			if len(r.errs) > 0 {
				t.Fatal(r.errs[0])
			}
			if err := r.checkSum(); err != nil {
				t.Fatal(err)
			}
			pairs, err := r.checkMixed()
			if err != nil {
				t.Fatal(err)
			}
			if pairs == 0 {
				t.Fatal("no coalition pair checked")
			}
			if err := r.checkViews(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The checks catch injected faults: a contributor whose parts reach every
// holder (a leak), and zero deltas (no re-randomisation).
func TestReshareFaultsDetected(t *testing.T) {
	leak := func(assign [][]int, c, i int) []int {
		if c != 0 {
			return assign[i]
		}
		all := make([]int, 0, 8)
		for j := range 8 {
			if slices.ContainsFunc(assign, func(hs []int) bool { return slices.Contains(hs, j) }) {
				all = append(all, j)
			}
		}
		return all
	}
	zero := func(shares, fix, n int) ([]share.Part, error) {
		parts := make([]share.Part, shares)
		for i := range parts {
			parts[i] = share.Part{Words: make([]uint64, n)}
		}
		return parts, nil
	}
	for _, tc := range reshareCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := runReshare(t, tc.assign, tc.n, 9, leak, honestContribution)
			if r.checkViews() == nil {
				t.Error("leak: contributor 0's parts reach every holder, the view check passed")
			}
			if len(r.errs) == 0 {
				t.Error("leak: the Resharers accepted parts of shares they do not hold")
			}
			z := runReshare(t, tc.assign, tc.n, 9, honest, zero)
			if z.checkSum() == nil {
				t.Error("zero deltas: the sum check passed")
			}
			if _, err := z.checkMixed(); err == nil {
				t.Error("zero deltas: old and new shares combine, the mixed check passed")
			}
		})
	}
}

// With one honest contributor, the delta of each share is uniform whatever
// the others send: its words show no bias over many draws.
func TestReshareOneHonestContributor(t *testing.T) {
	assign := discovery.CNFShares(4, 1)
	zeroFor := func(c int) contributor {
		return func(shares, fix, n int) ([]share.Part, error) {
			if c == 0 {
				return share.ZeroContribution(shares, fix, n, nil)
			}
			parts := make([]share.Part, shares)
			for i := range parts {
				parts[i] = share.Part{Words: make([]uint64, n)}
			}
			return parts, nil
		}
	}
	ones := 0
	const words, runs = 64, 8
	for range runs {
		rs := make([]*share.Resharer, 4)
		for j := range rs {
			rs[j], _ = share.NewResharer(assign, j, 4, words)
		}
		for c := range 4 {
			parts, err := zeroFor(c)(len(assign), heldBy(assign, c)[0], words)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range parts {
				for _, j := range assign[i] {
					if err := rs[j].Add(c, i, p); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		old := map[int][]uint64{}
		for _, i := range heldBy(assign, 3) {
			old[i] = make([]uint64, words)
		}
		nw, err := rs[3].Apply(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range nw {
			for _, v := range d {
				ones += bits.OnesCount64(v)
			}
		}
	}
	total := runs * len(heldBy(assign, 3)) * words * 64
	if ones < total*45/100 || ones > total*55/100 {
		t.Fatalf("deltas with one honest contributor: %d of %d bits set", ones, total)
	}
}

func TestResharerRefusals(t *testing.T) {
	assign := discovery.CNFShares(3, 1) // {0,1} {0,2} {1,2}
	seed := mustSeed(t)
	tests := []struct {
		name string
		c, i int
		p    share.Part
	}{
		{"unheld share", 0, 2, share.Part{Seed: &seed}},
		{"unknown contributor", 3, 0, share.Part{Seed: &seed}},
		{"negative contributor", -1, 0, share.Part{Seed: &seed}},
		{"short words", 0, 0, share.Part{Words: make([]uint64, 3)}},
		{"seed and words", 0, 0, share.Part{Seed: &seed, Words: make([]uint64, 4)}},
	}
	for _, tc := range tests {
		r, err := share.NewResharer(assign, 0, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Add(tc.c, tc.i, tc.p); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	r, _ := share.NewResharer(assign, 0, 3, 4)
	if err := r.Add(1, 0, share.Part{Seed: &seed}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(1, 0, share.Part{Seed: &seed}); err == nil {
		t.Error("a second part from the same contributor: accepted")
	}
	if _, err := r.Apply(map[int][]uint64{0: make([]uint64, 4), 1: make([]uint64, 4)}); err == nil {
		t.Error("apply with parts missing: accepted")
	}
	if _, err := share.NewResharer(assign, 5, 3, 4); err == nil {
		t.Error("a holder holding no share: accepted")
	}
	if _, err := share.ZeroContribution(1, 0, 4, nil); err == nil {
		t.Error("a zero sharing over one share: accepted")
	}
	if _, err := share.ZeroContribution(3, 3, 4, nil); err == nil {
		t.Error("correction share out of range: accepted")
	}
}

func TestZeroContributionSumsToZero(t *testing.T) {
	for shares := 2; shares <= 10; shares++ {
		parts, err := share.ZeroContribution(shares, shares/2, 17, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum := make([]uint64, 17)
		for i, p := range parts {
			if (p.Seed == nil) != (i == shares/2) {
				t.Fatalf("%d shares: part %d: seed %v", shares, i, p.Seed != nil)
			}
			w, err := p.Expand(17)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range w {
				sum[k] += v
			}
		}
		if slices.ContainsFunc(sum, func(v uint64) bool { return v != 0 }) {
			t.Fatalf("%d shares: parts add up to %v", shares, sum)
		}
	}
}
