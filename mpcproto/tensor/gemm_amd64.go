//go:build amd64 && !purego

package tensor

// The AVX2 micro-kernels of gemm_amd64.s. Callers (the micro* wrappers in
// gemm.go) check that every slice holds the tile before passing pointers.

//go:noescape
func gemm4x4(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int)

//go:noescape
func gemm2x8(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int)

//go:noescape
func gemm1x4(c *uint64, a *uint64, b *uint64, ldb int, k int)

//go:noescape
func gemm1x8(c *uint64, a *uint64, b *uint64, ldb int, k int)

//go:noescape
func dwTaps4(d *uint64, s *uint64, w *uint64, offs *int, taps int, n int)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)

// hasAVX2 reports whether the CPU has AVX2 and the OS saves the YMM
// registers (OSXSAVE, and XCR0 enables the SSE and AVX state).
func hasAVX2() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const osxsave, avx = 1 << 27, 1 << 28
	if ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

var useAsm = hasAVX2()
