package share

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
)

// SeedSize is the size of a PRG seed in bytes.
const SeedSize = 32

// Seed keys a PRG.
type Seed [SeedSize]byte

// PRG is a cryptographic pseudo-random generator: the AES-256-CTR keystream
// under the seed with a zero IV, read as little-endian 64-bit words. Two PRGs
// with the same seed produce the same stream on every platform, which is
// what lets the dealer send a 32-byte seed instead of a party's material.
// A PRG is not safe for concurrent use.
type PRG struct {
	stream cipher.Stream
	buf    []byte
}

// NewPRG returns the PRG keyed by seed.
func NewPRG(seed Seed) *PRG {
	block, err := aes.NewCipher(seed[:])
	if err != nil {
		// unreachable: a 32-byte key is always valid for AES-256
		panic("share: aes: " + err.Error())
	}
	return &PRG{stream: cipher.NewCTR(block, make([]byte, aes.BlockSize)), buf: make([]byte, 8192)}
}

// Fill overwrites dst with the next len(dst) words of the stream.
func (g *PRG) Fill(dst []uint64) {
	for len(dst) > 0 {
		n := min(len(dst), len(g.buf)/8)
		b := g.buf[:8*n]
		clear(b)
		g.stream.XORKeyStream(b, b)
		for i := range n {
			dst[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		dst = dst[n:]
	}
}

// Uint64s returns the next n words of the stream.
func (g *PRG) Uint64s(n int) []uint64 {
	out := make([]uint64, n)
	g.Fill(out)
	return out
}
