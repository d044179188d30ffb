// Replication of a manifest's additive shares: which holders hold which
// share (Tolerate, Replicas), the assignments Publish uses, and the
// collusion threshold they give.

package discovery

import (
	"math/bits"
	"slices"
)

// MaxShares caps the number of additive shares of a replicated model.
const MaxShares = 256

// ShareHolders returns the holders of each additive share (indices into
// Holders): m.Replicas, or share i held by holder i alone.
func (m *Manifest) ShareHolders() [][]int {
	if len(m.Replicas) > 0 {
		return m.Replicas
	}
	out := make([][]int, len(m.Holders))
	for i := range out {
		out[i] = []int{i}
	}
	return out
}

// Replicated tells whether the model's shares are replicated (Tolerate > 0).
func (m *Manifest) Replicated() bool { return len(m.Replicas) > 0 }

// HeldShares returns the shares holder j holds (indices into ShareHolders).
func (m *Manifest) HeldShares(j int) []int {
	var out []int
	for i, hs := range m.ShareHolders() {
		if slices.Contains(hs, j) {
			out = append(out, i)
		}
	}
	return out
}

// CollusionThreshold is the largest number of holders that, pooling their
// shares, learn nothing of the weights: one less than the smallest
// coalition holding every share (N-1 without replication). It is exact for
// up to 24 holders (an exhaustive search); beyond that it is the bound
// ceil(S / largest holding) - 1.
func (m *Manifest) CollusionThreshold() int {
	return CollusionThreshold(len(m.Holders), m.ShareHolders())
}

// CollusionThreshold is Manifest.CollusionThreshold for n holders and an
// assignment of shares to holders.
func CollusionThreshold(n int, shares [][]int) int {
	words := (len(shares) + 63) / 64
	sets := make([][]uint64, n)
	for j := range sets {
		sets[j] = make([]uint64, words)
	}
	for i, hs := range shares {
		for _, j := range hs {
			if j >= 0 && j < n {
				sets[j][i/64] |= 1 << (i % 64)
			}
		}
	}
	if n > 24 {
		most := 0
		for j := range sets {
			c := 0
			for _, w := range sets[j] {
				c += bits.OnesCount64(w)
			}
			most = max(most, c)
		}
		if most == 0 {
			return n
		}
		return (len(shares)+most-1)/most - 1
	}
	best := n + 1
	for mask := 1; mask < 1<<n; mask++ {
		k := bits.OnesCount(uint(mask))
		if k >= best {
			continue
		}
		covered := true
		for w := 0; w < words && covered; w++ {
			var u uint64
			for j := 0; j < n; j++ {
				if mask&(1<<j) != 0 {
					u |= sets[j][w]
				}
			}
			want := ^uint64(0)
			if rem := len(shares) - 64*w; rem < 64 {
				want = 1<<rem - 1
			}
			covered = u&want == want
		}
		if covered {
			best = k
		}
	}
	return best - 1
}

// ReplicatedShares is the assignment Publish uses for n holders tolerating
// f of them down (0 < f <= n-2): replicated secret sharing (CNF), one
// additive share per set of f+1 holders, held by exactly those, when that
// is at most maxCNF shares (any n-f-1 holders then miss a share: the best
// threshold a scheme tolerating f can have, as Shamir's); else cyclic
// replication, share i on holders i, i+1, ..., i+f mod n (n shares, any
// ceil(n/(f+1))-1 holders learn nothing).
func ReplicatedShares(n, f int) [][]int {
	if binom(n, f+1) <= maxCNF {
		return CNFShares(n, f)
	}
	return CyclicShares(n, f)
}

// maxCNF caps the number of shares of the CNF assignment ReplicatedShares
// picks (each holder stores C(n-1, f) of them).
const maxCNF = 20

// CNFShares is one share per (f+1)-subset of the n holders, held by that
// subset, in lexicographic order.
func CNFShares(n, f int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == f+1 {
			out = append(out, slices.Clone(cur))
			return
		}
		for j := start; j < n; j++ {
			rec(j+1, append(cur, j))
		}
	}
	rec(0, nil)
	return out
}

// CyclicShares is n shares, share i held by holders i, ..., i+f mod n.
func CyclicShares(n, f int) [][]int {
	out := make([][]int, n)
	for i := range out {
		for k := 0; k <= f; k++ {
			out[i] = append(out[i], (i+k)%n)
		}
	}
	return out
}

func binom(n, k int) int {
	if k < 0 || k > n {
		return 0
	}
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > 1<<20 {
			return r
		}
	}
	return r
}
