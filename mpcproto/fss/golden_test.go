package fss

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// goldenCW is the SHA-256 of the correction words of the key pair in
// TestGoldenKey (little-endian words): keys dealt by one build must
// evaluate in every other (another platform, the crypto/aes path with
// -tags purego), so the PRG and the key layout must not change silently.
const goldenCW = "c3cb46fbf42f62479053f87d553c51db8474bdee61659cee510c8def27def239"

func TestGoldenKey(t *testing.T) {
	cw := make([]uint64, KeyWords(20, 3))
	roots := [2]Seed{{1, 2}, {3, 4}}
	if err := Gen(0x5a5a5, []uint64{7, 1 << 63, 42}, 20, roots, cw); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, w := range cw {
		h.Write(binary.LittleEndian.AppendUint64(nil, w))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != goldenCW {
		t.Fatalf("correction words hash %s, want %s: the PRG or the key layout changed", got, goldenCW)
	}
}
