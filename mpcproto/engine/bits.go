package engine

// compact4 gathers the bits of x at positions 0, 4, ..., 60 into its low
// 16 bits. It is linear over GF(2), so it applies to XOR shares.
func compact4(x uint64) uint64 {
	x &= 0x1111111111111111
	x = (x | x>>3) & 0x0303030303030303
	x = (x | x>>6) & 0x000f000f000f000f
	x = (x | x>>12) & 0x000000ff000000ff
	x = (x | x>>24) & 0x000000000000ffff
	return x
}

// packBits writes the low w bits of every vals[i] at bit offset i*w of dst
// (w divides 64, so no value straddles two words).
func packBits(dst []uint64, vals []uint64, w int) {
	mask := uint64(1)<<w - 1
	if w == 64 {
		mask = ^uint64(0)
	}
	clear(dst)
	for i, v := range vals {
		off := i * w
		dst[off/64] |= (v & mask) << (off % 64)
	}
}

// unpackBits is the inverse of packBits: vals[i] = the w bits at offset i*w.
func unpackBits(vals []uint64, src []uint64, w int) {
	mask := uint64(1)<<w - 1
	if w == 64 {
		mask = ^uint64(0)
	}
	for i := range vals {
		off := i * w
		vals[i] = (src[off/64] >> (off % 64)) & mask
	}
}
