//go:build amd64 && !purego

package fss

// useAsm: the CPU has AES-NI, so encryptBlocks runs encryptBlocksAsm.
var useAsm = hasAESNI()

// encryptBlocksAsm encrypts n blocks of src into dst with the expanded
// AES-128 key rk, four blocks at a time (aes_amd64.s).
//
//go:noescape
func encryptBlocksAsm(rk, dst, src *byte, n int)

// hasAESNI reports CPUID.1:ECX.AESNI[bit 25].
func hasAESNI() bool
