package fss

import (
	"crypto/aes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestBlocksMatchCryptoAES: the expanded key and the batched path
// (AES-NI on amd64) encrypt every block as crypto/aes does, for batches
// around the four-block stride.
func TestBlocksMatchCryptoAES(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 20 {
		key := make([]byte, 16)
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		k := newAESKey(key)
		ref, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		n := trial % 11
		src, got := make([]Seed, n), make([]Seed, n)
		for i := range src {
			src[i] = Seed{rng.Uint64(), rng.Uint64()}
		}
		k.encryptSeeds(got, src)
		for i, s := range src {
			var in, out [16]byte
			binary.LittleEndian.PutUint64(in[:], s[0])
			binary.LittleEndian.PutUint64(in[8:], s[1])
			ref.Encrypt(out[:], in[:])
			want := Seed{binary.LittleEndian.Uint64(out[:]), binary.LittleEndian.Uint64(out[8:])}
			if got[i] != want {
				t.Fatalf("trial %d (%d blocks, asm %v): block %d differs from crypto/aes", trial, n, useAsm, i)
			}
		}
	}
	if sbox[0] != 0x63 || sbox[0x53] != 0xed {
		t.Fatalf("S-box: %#x %#x", sbox[0], sbox[0x53])
	}
}
