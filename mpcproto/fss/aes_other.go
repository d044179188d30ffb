//go:build !amd64 || purego

package fss

// useAsm: no assembly in this build; encryptBlocks uses crypto/aes.
const useAsm = false

// encryptBlocksAsm is never called in this build.
func encryptBlocksAsm(rk, dst, src *byte, n int) { panic("fss: no AES assembly in this build") }
