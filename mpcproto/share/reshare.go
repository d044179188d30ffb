package share

import (
	"fmt"
	"io"
	"slices"
)

// Proactive re-sharing of a replicated additive sharing. The secret x is
// split into S additive shares x_0, ..., x_{S-1}, and share i is held by
// the holders assign[i] (every holder of share i has the same copy). A
// re-sharing replaces every x_i by x_i + d_i with sum_i d_i = 0, so the
// new shares still add up to x, while old and new shares no longer
// combine: a share set mixing versions adds up to x minus the deltas of
// its old shares, a uniformly random value.
//
//  1. Every contributor c (each holder of the new list) draws a random
//     sharing of zero, parts r_{c,0}, ..., r_{c,S-1} with sum_i r_{c,i} = 0
//     (ZeroContribution): S-1 parts are the PRG expansions of fresh seeds,
//     the remaining one (share fix, one the contributor holds, so that the
//     one full-size part travels to the fewest peers) is the correction,
//     minus the sum of the others.
//  2. Part r_{c,i} goes to the holders of share i, and to nobody else: a
//     holder never sees a part of a share it does not hold.
//  3. Each holder of share i adds d_i = sum_c r_{c,i} to its copy
//     (Resharer), then erases the parts and the old copy.
//
// Every holder of share i receives the same parts, so the copies stay
// equal; the sum of all d_i is the sum of the contributors' zero sharings,
// zero. One honest contributor suffices for every d_i of a share the
// adversary does not hold to be uniform given its view.

// Part is one contributor's part for one share: the expansion of a seed
// (Seed set) or explicit words (the correction part).
type Part struct {
	Seed  *Seed
	Words []uint64
}

// Expand returns the part's n words.
func (p Part) Expand(n int) ([]uint64, error) {
	if p.Seed != nil {
		if p.Words != nil {
			return nil, fmt.Errorf("share: a part with both a seed and %d words", len(p.Words))
		}
		return NewPRG(*p.Seed).Uint64s(n), nil
	}
	if len(p.Words) != n {
		return nil, fmt.Errorf("share: a part of %d words, want %d", len(p.Words), n)
	}
	return p.Words, nil
}

// ZeroContribution draws one contributor's random sharing of zero over
// shares additive shares of n words each: parts[i] is the part of share
// i, parts[fix] the correction (explicit words), every other part a fresh
// seed read from rng (crypto/rand when nil).
func ZeroContribution(shares, fix, n int, rng io.Reader) ([]Part, error) {
	if shares < 2 {
		return nil, fmt.Errorf("share: a sharing of zero over %d shares: need at least 2", shares)
	}
	if fix < 0 || fix >= shares {
		return nil, fmt.Errorf("share: correction share %d of %d", fix, shares)
	}
	if n < 0 {
		return nil, fmt.Errorf("share: a sharing of %d words", n)
	}
	parts := make([]Part, shares)
	corr := make([]uint64, n)
	buf := make([]uint64, n)
	for i := range parts {
		if i == fix {
			continue
		}
		seed, err := NewSeed(rng)
		if err != nil {
			return nil, err
		}
		parts[i] = Part{Seed: &seed}
		NewPRG(seed).Fill(buf)
		for k, v := range buf {
			corr[k] -= v
		}
	}
	parts[fix] = Part{Words: corr}
	return parts, nil
}

// Resharer is one holder's side of a re-sharing: it collects, for every
// share it holds, one part from each contributor, and adds their sum (the
// share's delta) to its copy. It is not safe for concurrent use.
type Resharer struct {
	held         []int // the shares this holder holds, ascending
	contributors int
	words        int
	delta        map[int][]uint64 // share -> sum of the parts received
	got          map[int][]bool   // share -> contributor -> received
	missing      int
}

// NewResharer returns holder self's side of a re-sharing of the sharing
// assign (assign[i] = the holders of share i) with the given number of
// contributors, each share n words.
func NewResharer(assign [][]int, self, contributors, n int) (*Resharer, error) {
	if contributors < 1 || n < 0 {
		return nil, fmt.Errorf("share: re-sharing with %d contributors of %d words", contributors, n)
	}
	r := &Resharer{contributors: contributors, words: n, delta: map[int][]uint64{}, got: map[int][]bool{}}
	for i, hs := range assign {
		if slices.Contains(hs, self) {
			r.held = append(r.held, i)
			r.delta[i] = make([]uint64, n)
			r.got[i] = make([]bool, contributors)
			r.missing += contributors
		}
	}
	if len(r.held) == 0 {
		return nil, fmt.Errorf("share: holder %d holds no share", self)
	}
	return r, nil
}

// Held returns the shares this holder holds, ascending.
func (r *Resharer) Held() []int { return slices.Clone(r.held) }

// Add adds contributor c's part of share i. It refuses a share this holder
// does not hold, an unknown contributor, a second part of the same
// contributor and share, and a part of the wrong size.
func (r *Resharer) Add(c, i int, p Part) error {
	got, ok := r.got[i]
	switch {
	case !ok:
		return fmt.Errorf("share: a part of share %d, which this holder does not hold", i)
	case c < 0 || c >= r.contributors:
		return fmt.Errorf("share: a part from contributor %d of %d", c, r.contributors)
	case got[c]:
		return fmt.Errorf("share: a second part of share %d from contributor %d", i, c)
	}
	words, err := p.Expand(r.words)
	if err != nil {
		return fmt.Errorf("share: share %d from contributor %d: %w", i, c, err)
	}
	d := r.delta[i]
	for k, v := range words {
		d[k] += v
	}
	got[c] = true
	r.missing--
	return nil
}

// Missing is how many parts are still expected.
func (r *Resharer) Missing() int { return r.missing }

// Apply returns the new copy of every held share, old[i] + d_i, once every
// part has arrived, and erases the deltas (the Resharer is then spent).
// old must hold every held share, n words each; it is not modified.
func (r *Resharer) Apply(old map[int][]uint64) (map[int][]uint64, error) {
	if r.missing > 0 {
		return nil, fmt.Errorf("share: %d parts still missing", r.missing)
	}
	if r.delta == nil {
		return nil, fmt.Errorf("share: the re-sharing was applied already")
	}
	out := make(map[int][]uint64, len(r.held))
	for _, i := range r.held {
		o, ok := old[i]
		if !ok || len(o) != r.words {
			return nil, fmt.Errorf("share: old copy of share %d: %d words, want %d", i, len(o), r.words)
		}
		nw := slices.Clone(o)
		for k, v := range r.delta[i] {
			nw[k] += v
		}
		out[i] = nw
	}
	r.Erase()
	return out, nil
}

// Erase overwrites and drops the deltas (also when a re-sharing fails).
func (r *Resharer) Erase() {
	for _, d := range r.delta {
		clear(d)
	}
	r.delta = nil
}
