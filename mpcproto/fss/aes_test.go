package fss

import (
	"bytes"
	"crypto/aes"
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
		src, got, want := make([]byte, 16*n), make([]byte, 16*n), make([]byte, 16*n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		k.encryptBlocks(got, src)
		for i := 0; i < len(src); i += 16 {
			ref.Encrypt(want[i:i+16], src[i:i+16])
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d (%d blocks, asm %v): blocks differ from crypto/aes", trial, n, useAsm)
		}
	}
	if sbox[0] != 0x63 || sbox[0x53] != 0xed {
		t.Fatalf("S-box: %#x %#x", sbox[0], sbox[0x53])
	}
}
