//go:build !amd64 || purego

package tensor

// Without the amd64 kernels (other architectures, or the purego tag) the
// product runs the portable Go micro-kernels; these stubs are never called.

var useAsm = false

func gemm4x4(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int) {
	panic("tensor: no assembly kernels")
}

func gemm2x8(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int) {
	panic("tensor: no assembly kernels")
}

func gemm1x4(c *uint64, a *uint64, b *uint64, ldb int, k int) {
	panic("tensor: no assembly kernels")
}

func gemm1x8(c *uint64, a *uint64, b *uint64, ldb int, k int) {
	panic("tensor: no assembly kernels")
}

func dwTaps4(d *uint64, s *uint64, w *uint64, offs *int, taps int, n int) {
	panic("tensor: no assembly kernels")
}
