package fss

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
)

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
var fixedKeys = func() [numKeys]cipher.Block {
	var out [numKeys]cipher.Block
	for i := range out {
		sum := sha256.Sum256([]byte{'g', 'r', 'i', 'd', '-', 'f', 's', 's', '/', '1', byte(i)})
		b, err := aes.NewCipher(sum[:16])
		if err != nil {
			panic("fss: aes: " + err.Error()) // unreachable: a 16-byte key is valid
		}
		out[i] = b
	}
	return out
}()

// prg is the PRG's scratch space (not safe for concurrent use): the
// buffers the AES calls read and write, kept off the heap per call.
type prg struct {
	in, out [16]byte
}

// hash returns H_k(s) = AES_k(sigma(s)) XOR sigma(s) with
// sigma(hi || lo) = (hi XOR lo) || hi.
func (g *prg) hash(k int, s Seed) Seed {
	lo, hi := s[1], s[0]^s[1]
	binary.LittleEndian.PutUint64(g.in[0:], lo)
	binary.LittleEndian.PutUint64(g.in[8:], hi)
	fixedKeys[k].Encrypt(g.out[:], g.in[:])
	return Seed{binary.LittleEndian.Uint64(g.out[0:]) ^ lo, binary.LittleEndian.Uint64(g.out[8:]) ^ hi}
}

// seedMask clears a seed's two low bits (the control bit and the spare bit
// a correction word uses for the second control-bit correction).
const seedMask = ^uint64(3)

// expand is one side (0 left, 1 right) of G(s): the child seed, its
// control bit and, when v is not empty, len(v) value words.
func (g *prg) expand(s Seed, side int, v []uint64) (Seed, uint64) {
	k := side * blocksPerSide
	c := g.hash(k, s)
	t := c[0] & 1
	c[0] &= seedMask
	g.values(k+1, s, v)
	return c, t
}

// values fills v with the value words of s from the blocks of keys k,
// k+1: two words per block.
func (g *prg) values(k int, s Seed, v []uint64) {
	for j := 0; j < len(v); j += 2 {
		b := g.hash(k+j/2, s)
		v[j] = b[0]
		if j+1 < len(v) {
			v[j+1] = b[1]
		}
	}
}
