package fss

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"unsafe"
)

// aesKey is a fixed AES-128 key of the PRG, expanded once: the round keys
// serve the batched AES-NI path (encryptBlocksAsm, amd64), the
// cipher.Block the portable one. Both compute the same function
// (TestBlocksMatchCryptoAES).
type aesKey struct {
	rk    [176]byte
	block cipher.Block
}

// newAESKey expands a 16-byte key.
func newAESKey(key []byte) *aesKey {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("fss: aes: " + err.Error()) // unreachable: a 16-byte key is valid
	}
	k := &aesKey{block: b}
	expandKey128(key, &k.rk)
	return k
}

// encryptSeeds encrypts the blocks src into dst (same length), a seed's
// block being its two words little-endian, low word first. On amd64 with
// AES-NI that is the seeds' memory as it is (encryptBlocksAsm reads and
// writes it in place); elsewhere each block goes through crypto/aes.
func (k *aesKey) encryptSeeds(dst, src []Seed) {
	if len(src) == 0 {
		return
	}
	if useAsm {
		encryptBlocksAsm(&k.rk[0], (*byte)(unsafe.Pointer(&dst[0])), (*byte)(unsafe.Pointer(&src[0])), len(src))
		return
	}
	var in, out [16]byte
	for i, s := range src {
		binary.LittleEndian.PutUint64(in[:], s[0])
		binary.LittleEndian.PutUint64(in[8:], s[1])
		k.block.Encrypt(out[:], in[:])
		dst[i] = Seed{binary.LittleEndian.Uint64(out[:]), binary.LittleEndian.Uint64(out[8:])}
	}
}

// sbox is the AES S-box, computed from its definition (FIPS-197 5.1.1):
// the inverse in GF(2^8) followed by the affine map.
var sbox = func() [256]byte {
	var out [256]byte
	for x := range 256 {
		inv := byte(0)
		for y := 1; y < 256 && x != 0; y++ {
			if gfMul(byte(x), byte(y)) == 1 {
				inv = byte(y)
				break
			}
		}
		s := inv
		for r := 1; r <= 4; r++ {
			s ^= inv<<r | inv>>(8-r)
		}
		out[x] = s ^ 0x63
	}
	return out
}()

// gfMul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
func gfMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		a = xtime(a)
		b >>= 1
	}
	return p
}

// xtime multiplies by x in GF(2^8).
func xtime(a byte) byte {
	if a&0x80 != 0 {
		return a<<1 ^ 0x1b
	}
	return a << 1
}

// expandKey128 is the AES-128 key schedule (FIPS-197 5.2): 11 round keys,
// in the byte order AES-NI loads them.
func expandKey128(key []byte, rk *[176]byte) {
	copy(rk[:16], key)
	rcon := byte(1)
	for i := 16; i < 176; i += 4 {
		t := [4]byte{rk[i-4], rk[i-3], rk[i-2], rk[i-1]}
		if i%16 == 0 {
			t = [4]byte{sbox[t[1]] ^ rcon, sbox[t[2]], sbox[t[3]], sbox[t[0]]}
			rcon = xtime(rcon)
		}
		for j := range 4 {
			rk[i+j] = rk[i-16+j] ^ t[j]
		}
	}
}
