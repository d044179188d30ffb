package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

func testPeers(t *testing.T, n int) []peer.ID {
	t.Helper()
	out := make([]peer.ID, n)
	for i := range out {
		_, pk, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = peer.IDFromPublicKey(pk); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// subsets calls f with every subset of {0..n-1} of size k.
func subsets(n, k int, f func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			f(cur)
			return
		}
		for j := start; j < n; j++ {
			rec(j+1, append(cur, j))
		}
	}
	rec(0, nil)
}

// TestReplicaAlgebra checks the replicated sharing for several (N, F) and
// both assignments: every share on F+1 holders; with any F holders down a
// replica choice exists, has at least two parties, and the parties' sums
// of their shares add up to the secret (against the plaintext); the
// collusion threshold is N-F-1 for CNF and ceil(N/(F+1))-1 for cyclic, no
// coalition of that size holds every share and some coalition one larger
// does.
func TestReplicaAlgebra(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, nf := range [][2]int{{3, 1}, {4, 1}, {4, 2}, {5, 1}, {5, 2}, {6, 1}, {6, 2}, {7, 3}, {8, 2}} {
		n, f := nf[0], nf[1]
		holders := testPeers(t, n)
		schemes := map[string][][]int{"cnf": discovery.CNFShares(n, f), "cyclic": discovery.CyclicShares(n, f)}
		wantThreshold := map[string]int{"cnf": n - f - 1, "cyclic": (n+f)/(f+1) - 1}
		for name, assign := range schemes {
			t.Run(fmt.Sprintf("N%dF%d/%s", n, f, name), func(t *testing.T) {
				m := &discovery.Manifest{ID: "m", Mode: discovery.ModeMPC, Holders: holders, Tolerate: f, Replicas: assign}
				for i, hs := range assign {
					if len(hs) != f+1 {
						t.Fatalf("share %d on %d holders", i, len(hs))
					}
				}
				th := m.CollusionThreshold()
				if th != wantThreshold[name] || th < 1 {
					t.Fatalf("collusion threshold %d, want %d", th, wantThreshold[name])
				}
				covers := func(c []int) bool {
					for _, hs := range assign {
						if !slices.ContainsFunc(hs, func(j int) bool { return slices.Contains(c, j) }) {
							return false
						}
					}
					return true
				}
				subsets(n, th, func(c []int) {
					if covers(c) {
						t.Fatalf("coalition %v of %d holds every share", c, th)
					}
				})
				found := false
				subsets(n, th+1, func(c []int) { found = found || covers(c) })
				if !found {
					t.Fatalf("no coalition of %d holds every share: threshold too low", th+1)
				}
				// Secret sharing and reconstruction with every set of up to F holders down.
				secret := make([]uint64, 5)
				for i := range secret {
					secret[i] = rng.Uint64()
				}
				shares := make([][]uint64, len(assign))
				for i := range shares {
					shares[i] = make([]uint64, len(secret))
					for k := range secret {
						if i < len(shares)-1 {
							shares[i][k] = rng.Uint64()
						} else {
							shares[i][k] = secret[k]
							for _, s := range shares[:i] {
								shares[i][k] -= s[k]
							}
						}
					}
				}
				for down := 0; down <= f; down++ {
					subsets(n, down, func(dead []int) {
						reps, err := chooseReplicas(m, func(p peer.ID) bool { return !slices.Contains(dead, slices.Index(holders, p)) })
						if err != nil {
							t.Fatalf("holders %v down: %v", dead, err)
						}
						if err := checkReplicaChoice(m, reps); err != nil {
							t.Fatalf("holders %v down: %v", dead, err)
						}
						parties, sets := sessionParties(reps)
						got := make([]uint64, len(secret))
						for k, p := range parties {
							j := slices.Index(holders, p)
							if slices.Contains(dead, j) {
								t.Fatalf("dead holder %d chosen", j)
							}
							for _, i := range sets[k] {
								if !slices.Contains(assign[i], j) {
									t.Fatalf("holder %d acts for share %d it does not hold", j, i)
								}
								for x := range got {
									got[x] += shares[i][x]
								}
							}
						}
						if !slices.Equal(got, secret) {
							t.Fatalf("holders %v down: reconstructed %v, want %v", dead, got, secret)
						}
					})
				}
				// F+1 holders of one share down: no choice.
				if _, err := chooseReplicas(m, func(p peer.ID) bool { return !slices.Contains(assign[0], slices.Index(holders, p)) }); !errors.Is(err, ErrNoHolder) {
					t.Fatalf("share 0's holders down: err %v, want ErrNoHolder", err)
				}
			})
		}
	}
}

// TestReplicaChoiceChecks: what a holder and a dealer refuse of a replica
// choice: a peer that does not hold the share, a wrong share count, a
// single party; the manifest refuses a bad assignment.
func TestReplicaChoiceChecks(t *testing.T) {
	hs := testPeers(t, 4)
	m := &discovery.Manifest{ID: "m", Mode: discovery.ModeMPC, Holders: hs, Tolerate: 1, Replicas: discovery.CyclicShares(4, 1)}
	ok := []peer.ID{hs[0], hs[1], hs[2], hs[3]}
	if err := checkReplicaChoice(m, ok); err != nil {
		t.Fatal(err)
	}
	merged := []peer.ID{hs[1], hs[1], hs[2], hs[3]} // holder 0 down: holder 1 acts for shares 0 and 1
	if err := checkReplicaChoice(m, merged); err != nil {
		t.Fatal(err)
	}
	if parties, sets := sessionParties(merged); len(parties) != 3 || partitionKey(sets) != "0,1|2|3" {
		t.Fatalf("parties %v, shares %v", parties, sets)
	}
	for name, reps := range map[string][]peer.ID{
		"not a replica":  {hs[2], hs[1], hs[2], hs[3]}, // share 0 is on holders 0 and 1
		"too few shares": {hs[0], hs[1], hs[2]},
		"one party":      {hs[1], hs[1], hs[1], hs[1]},
	} {
		if err := checkReplicaChoice(m, reps); !errors.Is(err, errBadRequest) {
			t.Errorf("%s: err %v, want errBadRequest", name, err)
		}
	}
	legacy := &discovery.Manifest{ID: "m", Mode: discovery.ModeMPC, Holders: hs}
	if err := checkReplicaChoice(legacy, []peer.ID{hs[1], hs[0], hs[2], hs[3]}); !errors.Is(err, errBadRequest) {
		t.Errorf("legacy model, holders reordered: err %v", err)
	}
	if err := checkReplicaChoice(legacy, hs); err != nil {
		t.Error(err)
	}
}

// TestReplicatedSwarm publishes the seed with N = 4, F = 1 (CNF: 6 shares,
// 3 per holder, any 2 holders may collude), queries it with every holder
// up, then with each holder closed in turn (every answer exact, timed),
// and checks Status and the failure with two holders of one share down.
func TestReplicatedSwarm(t *testing.T) {
	s := newTestSwarm(t, 4)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p, w := plan.Seed()
	m, err := s.client.Publish(ctx, "replicated", p, w, PublishOptions{Holders: 4, Tolerate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m.Tolerate != 1 || len(m.Replicas) != 6 || m.CollusionThreshold() != 2 {
		t.Fatalf("manifest tolerate %d, %d shares, threshold %d", m.Tolerate, len(m.Replicas), m.CollusionThreshold())
	}
	if _, err := s.client.Publish(ctx, "bad", p, w, PublishOptions{Holders: 3, Tolerate: 2}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("tolerate 2 of 3: err %v", err)
	}
	query := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		res, err := s.client.Infer(ctx, "replicated", vec(5, 3), InferOptions{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		checkOutput(t, res, 1022)
		return time.Since(start)
	}
	for range 3 {
		t.Logf("all holders up: %v", query("all up"))
	}
	st, err := s.client.Status(ctx, "replicated")
	if err != nil || !st.Answers || len(st.Shares) != 6 {
		t.Fatalf("status %+v, %v", st, err)
	}
	byID := map[peer.ID]int{}
	for i, h := range s.holders {
		byID[h.ID()] = i
	}
	// Close each holder in turn (restarting the previous one).
	for k := range m.Holders {
		i := byID[m.Holders[k]]
		s.holders[i].Close()
		first := query(fmt.Sprintf("holder %d down", k))
		second := query(fmt.Sprintf("holder %d down, again", k))
		t.Logf("holder %d down: first query %v, second %v", k, first, second)
		if first > 4*time.Second {
			t.Errorf("holder %d down: the query took %v", k, first)
		}
		st, err := s.client.Status(ctx, "replicated")
		if err != nil || !st.Answers || st.Holders[k].Live {
			t.Fatalf("status with holder %d down: %+v, %v", k, st, err)
		}
		if k == len(m.Holders)-1 {
			break
		}
		s.holders[i] = s.startHolder(t, i, false, nil)
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		_ = s.holders[i].disc.WaitReady(wctx)
		wcancel()
	}
	// Holders 3 and 2 down: share {2, 3} has no live replica.
	i := byID[m.Holders[2]]
	s.holders[i].Close()
	start := time.Now()
	_, err = s.client.Infer(ctx, "replicated", vec(5, 3), InferOptions{})
	if !errors.Is(err, ErrNoHolder) {
		t.Fatalf("two holders of a share down: err %v, want ErrNoHolder", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("two holders down: failed after %v", d)
	}
	s.holders[i] = nil
}

var _ = tensor.Dense[float64]{}
