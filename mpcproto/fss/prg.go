package fss

import "crypto/sha256"

// Seed is a 128-bit PRG seed, little-endian words (low word first).
type Seed [2]uint64

// The fixed AES keys, by output block: the seed block and the two value
// blocks of each side (left, right), and the two blocks of the final
// conversion of the leaf seed.
const (
	blocksPerSide = 3
	finalKey      = 2 * blocksPerSide
	numKeys       = finalKey + 2
)

// MaxWidth is the largest payload, in 64-bit words, a key may carry: two
// value blocks per level.
const MaxWidth = 4

// fixedKeys are the fixed AES keys of the PRG, public and derived from
// their index: H_k is a correlation-robust hash for any public key.
var fixedKeys = func() [numKeys]*aesKey {
	var out [numKeys]*aesKey
	for i := range out {
		sum := sha256.Sum256([]byte{'g', 'r', 'i', 'd', '-', 'f', 's', 's', '/', '1', byte(i)})
		out[i] = newAESKey(sum[:16])
	}
	return out
}()

// prg evaluates the PRG on a batch of seeds at once (the AES calls
// batched per fixed key): load the batch (load, or fill sig), then expand
// or hash it. Its buffers are reused between calls; it is not safe for
// concurrent use.
type prg struct {
	sig []Seed                // sigma of every seed of the batch: the AES inputs
	out []Seed                // an AES output
	blk [blocksPerSide][]Seed // the AES outputs of one side's blocks (blocks)
}

// sigma is the orthomorphism sigma(hi || lo) = (hi XOR lo) || hi.
func sigma(s Seed) Seed { return Seed{s[1], s[0] ^ s[1]} }

// load makes seeds the batch.
func (g *prg) load(seeds []Seed) {
	g.sig = g.sig[:0]
	for _, s := range seeds {
		g.sig = append(g.sig, sigma(s))
	}
}

// hash computes AES_k of the batch; word h of H_k(seed i) =
// AES_k(sigma(s)) XOR sigma(s) is then g.word(i, h).
func (g *prg) hash(k int) {
	if cap(g.out) < len(g.sig) {
		g.out = make([]Seed, len(g.sig), cap(g.sig))
	}
	g.out = g.out[:len(g.sig)]
	fixedKeys[k].encryptSeeds(g.out, g.sig)
}

func (g *prg) word(i, h int) uint64 { return g.out[i][h] ^ g.sig[i][h] }

// blocks computes AES under the keys k .. k+nb-1 of the batch into
// g.blk[0 .. nb-1]: word h of H_(k+b)(seed i) is g.blk[b][i][h] XOR
// g.sig[i][h] (the caller applies the feed-forward).
func (g *prg) blocks(k, nb int) {
	for b := range nb {
		if cap(g.blk[b]) < len(g.sig) {
			g.blk[b] = make([]Seed, len(g.sig), cap(g.sig))
		}
		g.blk[b] = g.blk[b][:len(g.sig)]
		fixedKeys[k+b].encryptSeeds(g.blk[b], g.sig)
	}
}

// seedMask clears a seed's two low bits (the control bit and the spare bit
// a correction word uses for the second control-bit correction).
const seedMask = ^uint64(3)

// expand is one side (0 left, 1 right) of G for every seed of the batch:
// the child seeds (ns), their control bits (nt) and w value words each
// (vals[i*w:]).
func (g *prg) expand(side, w int, ns []Seed, nt, vals []uint64) {
	k := side * blocksPerSide
	g.hash(k)
	for i := range g.sig {
		lo := g.word(i, 0)
		nt[i] = lo & 1
		ns[i] = Seed{lo & seedMask, g.word(i, 1)}
	}
	g.values(k+1, w, vals)
}

// values fills vals[i*w:(i+1)*w] with the value words of seed i of the
// batch, two words per block, the blocks from keys k, k+1.
func (g *prg) values(k, w int, vals []uint64) {
	for j := 0; j < w; j += 2 {
		g.hash(k + j/2)
		for i := range g.sig {
			vals[i*w+j] = g.word(i, 0)
			if j+1 < w {
				vals[i*w+j+1] = g.word(i, 1)
			}
		}
	}
}
