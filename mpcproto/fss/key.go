package fss

import (
	"encoding/binary"
	"fmt"
)

// Key is one party's DCF key in its stand-alone form (the engine takes the
// same parts from dealer material): the root seed, the input length, the
// payload width and the correction words, which are the same in both
// parties' keys.
type Key struct {
	Party int
	Bits  int
	Root  Seed
	// CW holds KeyWords(Bits, width) words.
	CW []uint64
	// Width is the payload, in words.
	Width int
}

const (
	keyMagic   = "GRDF"
	keyVersion = 1
	// keyHeader: magic, version, party, bits, width, root.
	keyHeader = 4 + 1 + 1 + 1 + 1 + 16
)

// NewKeys generates the key pair for f(x) = beta if x < alpha, else 0, on
// bits-bit inputs, from the two root seeds.
func NewKeys(alpha uint64, beta []uint64, bits int, roots [2]Seed) ([2]*Key, error) {
	cw := make([]uint64, KeyWords(bits, len(beta)))
	if err := Gen(alpha, beta, bits, roots, cw); err != nil {
		return [2]*Key{}, err
	}
	var out [2]*Key
	for b := range 2 {
		out[b] = &Key{Party: b, Bits: bits, Width: len(beta), Root: roots[b], CW: cw}
	}
	return out, nil
}

// Eval writes the key's share of f(x) into out (Width words).
func (k *Key) Eval(x uint64, out []uint64) error {
	return Eval(k.Party, k.Root, k.CW, k.Bits, x, out)
}

// Size is the length of the key's encoding in bytes.
func (k *Key) Size() int { return keyHeader + 8*len(k.CW) }

// MarshalBinary encodes the key: a fixed header then the correction words,
// little-endian.
func (k *Key) MarshalBinary() ([]byte, error) {
	if k.Party != 0 && k.Party != 1 {
		return nil, fmt.Errorf("%w: party %d (want 0 or 1)", ErrParams, k.Party)
	}
	if err := checkParams(k.Bits, k.Width, len(k.CW)); err != nil {
		return nil, err
	}
	out := make([]byte, k.Size())
	copy(out, keyMagic)
	out[4], out[5], out[6], out[7] = keyVersion, byte(k.Party), byte(k.Bits), byte(k.Width)
	binary.LittleEndian.PutUint64(out[8:], k.Root[0])
	binary.LittleEndian.PutUint64(out[16:], k.Root[1])
	for i, v := range k.CW {
		binary.LittleEndian.PutUint64(out[keyHeader+8*i:], v)
	}
	return out, nil
}

// UnmarshalKey decodes a key, checking its header and every size before
// it allocates; it keeps no reference to data.
func UnmarshalKey(data []byte) (*Key, error) {
	if len(data) < keyHeader {
		return nil, fmt.Errorf("fss: key of %d bytes is shorter than its %d-byte header", len(data), keyHeader)
	}
	if string(data[:4]) != keyMagic {
		return nil, fmt.Errorf("fss: not a DCF key (bad magic)")
	}
	if data[4] != keyVersion {
		return nil, fmt.Errorf("fss: key version %d, want %d", data[4], keyVersion)
	}
	k := &Key{Party: int(data[5]), Bits: int(data[6]), Width: int(data[7])}
	if k.Party > 1 {
		return nil, fmt.Errorf("%w: party %d (want 0 or 1)", ErrParams, k.Party)
	}
	words := (len(data) - keyHeader) / 8
	if (len(data)-keyHeader)%8 != 0 {
		return nil, fmt.Errorf("fss: key body of %d bytes is not whole words", len(data)-keyHeader)
	}
	if err := checkParams(k.Bits, k.Width, words); err != nil {
		return nil, err
	}
	k.Root = Seed{binary.LittleEndian.Uint64(data[8:]), binary.LittleEndian.Uint64(data[16:])}
	k.CW = make([]uint64, words)
	for i := range k.CW {
		k.CW[i] = binary.LittleEndian.Uint64(data[keyHeader+8*i:])
	}
	return k, nil
}
