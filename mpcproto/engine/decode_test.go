package engine

import (
	"encoding/binary"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the round-message checker and decoder: it must
// accept exactly the well-formed message of the expected round and size, and
// never panic.
func FuzzDecode(f *testing.F) {
	good := make([]byte, headerSize+16)
	binary.LittleEndian.PutUint32(good, 3)
	binary.LittleEndian.PutUint32(good[4:], 2)
	f.Add(good, 2)
	f.Add(good[:5], 2)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, m []byte, want int) {
		if want < 0 || want > 1<<16 {
			return
		}
		p := &party{round: 3}
		err := p.checkMessage(m, want)
		ok := len(m) == headerSize+8*want && binary.LittleEndian.Uint32(m) == 3 &&
			int(binary.LittleEndian.Uint32(m[4:])) == want
		if ok != (err == nil) {
			t.Fatalf("decode(%d bytes, want %d): err %v, well-formed %v", len(m), want, err, ok)
		}
		if err == nil {
			out := [][]uint64{make([]uint64, want)}
			accumulate(out, []vec{arith(nil)}, m[headerSize:])
		}
	})
}
