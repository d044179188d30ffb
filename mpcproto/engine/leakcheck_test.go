package engine

import (
	"fmt"
	"math/bits"
)

// Privacy checks on recorded views. Each returns a verdict: a statistic
// and the limit above which the check reports a leak, so that the normal
// tests assert "no leak" and the fault controls (gridfault tag) assert
// "leak", with the same code.
//
// A view is one session's words as an observer sees them, the same
// positions in every session: the opened values of every round in order
// (every holder computes them), then, for the last holder, its explicit
// dealer words. Views are grouped in classes, one per secret (an input or
// a weight set), many sessions each.

// verdict is the result of one privacy check.
type verdict struct {
	// check names the check and the view it ran on.
	check string
	// stat is the check's statistic, limit the largest value it passes.
	stat, limit float64
	// detail says where the worst case was found.
	detail string
}

// leak reports whether the check found a leak.
func (v verdict) leak() bool { return v.stat > v.limit }

func (v verdict) String() string {
	s := fmt.Sprintf("%s: %.4g (limit %.4g)", v.check, v.stat, v.limit)
	if v.detail != "" {
		s += ": " + v.detail
	}
	return s
}

// nearBits: two words are near when they differ by less than 2^nearBits
// (as ring elements, either way) or agree on every bit above nearBits.
// For independent uniform words that has probability 2^-39 (resp. 2^-40);
// a value that is a function of the secret up to a truncation's rounding
// (a unit or two) is always near itself.
const nearBits = 24

func nearArith(x, y uint64) bool { return x-y+1<<nearBits < 1<<(nearBits+1) }
func nearXor(x, y uint64) bool   { return (x^y)>>nearBits == 0 }
func near(x, y uint64) bool      { return nearArith(x, y) || nearXor(x, y) }

// columns transposes one class's views: cols[u][s] is word u of session s.
func columns(views [][]uint64) [][]uint64 {
	cols := make([][]uint64, len(views[0]))
	for u := range cols {
		cols[u] = make([]uint64, len(views))
		for s, v := range views {
			cols[u][s] = v[u]
		}
	}
	return cols
}

// checkConstantBits counts the bits of the view that keep one value over
// every session of a class. In a correct protocol every bit of every word
// (opened values, explicit words) is a fresh uniform bit, so with S
// sessions per class the expected count is 2·(words·64)·2^(1-S) (below
// 0.03 for 1500 words and S = 24); a word opened unmasked, or masked on
// some bits only, has constant bits whenever the secret fixes them. The
// limit is 2: a false alarm needs three accidents (probability ~1e-6).
func checkConstantBits(name string, classes ...[][]uint64) verdict {
	v := verdict{check: name + ": constant bits", limit: 2}
	consts := make([][]uint64, len(classes)) // per class: mask of constant bits of each word
	for c, views := range classes {
		cols := columns(views)
		consts[c] = make([]uint64, len(cols))
		for u, col := range cols {
			and, or := ^uint64(0), uint64(0)
			for _, w := range col {
				and &= w
				or |= w
			}
			consts[c][u] = and | ^or
			if n := bits.OnesCount64(consts[c][u]); n > 0 {
				v.stat += float64(n)
				if v.detail == "" {
					v.detail = fmt.Sprintf("first in word %d of class %d (%#x constant)", u, c, consts[c][u])
				}
			}
		}
	}
	if len(classes) == 2 && v.stat > 0 {
		differ := 0
		for u := range consts[0] {
			both := consts[0][u] & consts[1][u]
			differ += bits.OnesCount64(both & (classes[0][0][u] ^ classes[1][0][u]))
		}
		v.detail += fmt.Sprintf("; %d constant bits differ between the secrets", differ)
	}
	return v
}

// checkDetermined looks for words, and sums, differences and XORs of pairs
// of words, that a secret determines: for each class, the number of
// sessions whose value is near (see near) its value in the class's first
// session. Pairs have at least one of their words among the first opened
// words of the view (pairs of two explicit words are skipped: explicit
// words carry the other parties' fresh shares, independent of each
// other). In a correct protocol every such value is fresh and uniform
// (each opened value has its own mask), so the count is 0 (any count at
// all has probability ~1e-4 for 600 000 pairs and 24 sessions); a mask
// used twice, or a value opened with no mask, is near itself in every
// session of a class. The statistic is the largest count, the limit a
// quarter of the sessions.
func checkDetermined(name string, opened int, classes ...[][]uint64) verdict {
	v := verdict{check: name + ": determined words and pairs"}
	best := 0
	for c, views := range classes {
		s := len(views)
		v.limit = float64(s-1) / 4
		cols := columns(views)
		for u := range min(opened, len(cols)) {
			a := cols[u]
			if n := countNear(a, nil, 0); n > best {
				best = n
				v.detail = fmt.Sprintf("class %d: word %d", c, u)
			}
			for w := u + 1; w < len(cols); w++ {
				for op := range 3 {
					if n := countNear(a, cols[w], op); n > best {
						best = n
						v.detail = fmt.Sprintf("class %d: %s of words %d and %d", c, [3]string{"sum", "difference", "XOR"}[op], u, w)
					}
				}
			}
		}
	}
	v.stat = float64(best)
	return v
}

// countNear counts the sessions s >= 1 in which a[s] (b == nil), or
// a[s] + b[s] (op 0), a[s] - b[s] (op 1), a[s] XOR b[s] (op 2), is near its
// value in session 0.
func countNear(a, b []uint64, op int) int {
	n := 0
	switch {
	case b == nil:
		for s := 1; s < len(a); s++ {
			if near(a[s], a[0]) {
				n++
			}
		}
	case op == 0:
		z0 := a[0] + b[0]
		for s := 1; s < len(a); s++ {
			if near(a[s]+b[s], z0) {
				n++
			}
		}
	case op == 1:
		z0 := a[0] - b[0]
		for s := 1; s < len(a); s++ {
			if near(a[s]-b[s], z0) {
				n++
			}
		}
	default:
		z0 := a[0] ^ b[0]
		for s := 1; s < len(a); s++ {
			if near(a[s]^b[s], z0) {
				n++
			}
		}
	}
	return n
}
