package engine

import (
	"fmt"

	"github.com/gridmpc/grid/mpcproto/share"
)

// Output re-randomisation.
//
// A holder's raw output share is a function of its dealer material, its
// shares and the values opened during the session. The dealer knows every
// party's material, so a client colluding with it could read more than the
// output off the shares: the share of a final ReLU, for instance, gives
// away its pre-activation, including the values the ReLU zeroes. Before
// returning it, each holder therefore adds a fresh share of zero that only
// the holders know: party i draws a seed s_ij for every j > i and sends it
// to j inside its first round message, and adds
//
//	Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ji)
//
// to its output share. The terms cancel in the sum of all shares; for the
// client and the dealer, who never see the seeds, the N output shares are a
// uniform sharing of the output. The seeds ride on the first round's
// messages (share.SeedSize bytes more to each later party), so they add no
// message and no round; a plan without any interactive op sends them in a
// round of their own at the end.

// seedWords is the size of a re-randomisation seed in 64-bit words.
const seedWords = share.SeedSize / 8

// zeroSharing is one party's state of the output re-randomisation.
type zeroSharing struct {
	// seeds[j] is the seed shared with party j: drawn here for j > self,
	// received from j for j < self.
	seeds []share.Seed
	// pending is set until the seeds have travelled (the first round).
	pending bool
}

// newZeroSharing draws party self's seeds for the parties after it.
func newZeroSharing(n, self int) (*zeroSharing, error) {
	z := &zeroSharing{seeds: make([]share.Seed, n), pending: true}
	for j := self + 1; j < n; j++ {
		s, err := share.NewSeed(nil)
		if err != nil {
			return nil, fmt.Errorf("engine: party %d: output re-randomisation seed: %w", self, err)
		}
		z.seeds[j] = s
	}
	return z, nil
}

// seedWordsTo is the number of seed words this round's message to peer j
// carries after its payload.
func (p *party) seedWordsTo(j int) int {
	if p.zs != nil && p.zs.pending && j > p.self {
		return seedWords
	}
	return 0
}

// seedWordsFrom is the number of seed words this round's message from peer
// j carries after its payload.
func (p *party) seedWordsFrom(j int) int {
	if p.zs != nil && p.zs.pending && j < p.self {
		return seedWords
	}
	return 0
}

// messageTo returns the round message for peer j: msg itself, or a copy
// with the seed for j appended and the header's word count raised.
func (p *party) messageTo(msg []byte, total, j int) []byte {
	if p.seedWordsTo(j) == 0 {
		return msg
	}
	m := make([]byte, len(msg), len(msg)+share.SeedSize)
	copy(m, msg)
	putWordCount(m, total+seedWords)
	return append(m, p.zs.seeds[j][:]...)
}

// takeSeed keeps the seed that peer j appended to its message m, which
// carries total payload words.
func (p *party) takeSeed(m []byte, total, j int) {
	if p.seedWordsFrom(j) == 0 {
		return
	}
	copy(p.zs.seeds[j][:], m[headerSize+8*total:])
}

// rerandomize returns a copy of the output share out plus this party's
// share of zero. When no round has carried the seeds yet, it runs a round
// of its own for them first.
func (p *party) rerandomize(out *shared) (*shared, error) {
	if p.zs.pending {
		if _, err := p.open(); err != nil {
			return nil, err
		}
	}
	res := out.Clone()
	if faultSkipRerandomization() {
		return res, nil
	}
	mask := make([]uint64, len(res.Data))
	for j := range p.n {
		if j == p.self {
			continue
		}
		share.NewPRG(p.zs.seeds[j]).Fill(mask)
		if j > p.self {
			for i, v := range mask {
				res.Data[i] += v
			}
		} else {
			for i, v := range mask {
				res.Data[i] -= v
			}
		}
	}
	return res, nil
}
