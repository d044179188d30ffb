package tensor

import (
	"fmt"
	"runtime"
	"sync"
)

// The uint64 matrix product of the secure engine (ring Z_2^64: products and
// sums wrap, which is the ring arithmetic). MatMulInto, MatMul and Conv2D use
// it for uint64 transparently; other element types keep the generic loops.
//
// Structure (the GotoBLAS/BLIS loop nest, adapted to a broadcast kernel):
//
//	split C across GOMAXPROCS goroutines (columns, or rows when C is tall)
//	for each block of nc columns of B:
//	  for each block of kc rows of B (k):
//	    pack B[kc, nc] into panels of 4 columns, each kc x 4 contiguous
//	    for each block of mc rows of A:
//	      for each panel:            (the panel stays in L1: kc*32 bytes)
//	        for each 4 rows of A:    (the A block stays in L2: mc*kc*8 bytes)
//	          C[4x4] += A[4, kc] · panel    (registers, one store per tile)
//
// With fewer than gemmPackRows rows (matrix-vector products: an MLP or a
// classifier at batch 1) packing B costs as much as the product, and B is
// read in place: when it is small, two rows of C by 8 columns at a time over
// blocks of gemmKCRows rows of B; when it is large (not in cache), one row of
// C at a time, streaming 16 rows of B front to back per kernel call (reading
// columns of a large row-major B would touch a new page per word, which the
// hardware prefetchers do not follow).
//
// The micro-kernels are AVX2 assembly on amd64 (gemm_amd64.s: two vector
// multiplies per four 64-bit products) and portable Go elsewhere or with the
// purego build tag; both are exact mod 2^64.

const (
	gemmKC = 256 // k block: a 4-column panel is gemmKC*32 bytes = 8 KiB
	gemmMC = 64  // rows per A block: gemmMC*gemmKC*8 = 128 KiB
	gemmNC = 512 // columns per packed B block

	gemmPackRows    = 4       // fewer rows than this: B is not packed
	gemmKCRows      = 64      // k block of the unpacked path (B in cache)
	gemmStreamWords = 1 << 18 // from this size of B (2 MiB) the unpacked path streams its rows

	// gemmMinWork is the number of multiply-adds below which a product is
	// not split across goroutines (about 50 µs of one core).
	gemmMinWork = 1 << 17
)

// MatMulU64Into adds a·b to dst over Z_2^64, where a is m x k, b is k x n
// and dst is m x n, all row-major (longer slices are allowed; only their
// prefixes are used). It is blocked for the caches, uses SIMD kernels where
// the CPU has them and splits large products across runtime.GOMAXPROCS
// goroutines. The result is exactly the naive Σ_p a[i,p]·b[p,j] mod 2^64.
// It panics on negative sizes or slices too short for them.
func MatMulU64Into(dst, a, b []uint64, m, k, n int) {
	if m < 0 || k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor: matmul sizes %d, %d, %d", m, k, n))
	}
	if len(dst) < m*n || len(a) < m*k || len(b) < k*n {
		panic(fmt.Sprintf("tensor: matmul [%d,%d]x[%d,%d] with %d, %d and %d elements",
			m, k, k, n, len(a), len(b), len(dst)))
	}
	if m == 0 || n == 0 || k == 0 {
		return
	}
	workers := splitWorkers(uint64(m) * uint64(k) * uint64(n))
	if workers <= 1 {
		gemmBlock(dst, a, b, k, n, 0, m, 0, n)
		return
	}
	// split the larger side of C, in whole tiles: rows by 4, columns by 8
	var parts [][4]int // i0, i1, j0, j1
	if m >= n && m >= 8*workers {
		step := (m/workers + 3) &^ 3
		for i := 0; i < m; i += step {
			parts = append(parts, [4]int{i, min(i+step, m), 0, n})
		}
	} else if n >= 16 {
		step := max((n/workers+7)&^7, 8)
		for j := 0; j < n; j += step {
			parts = append(parts, [4]int{0, m, j, min(j+step, n)})
		}
	} else {
		gemmBlock(dst, a, b, k, n, 0, m, 0, n)
		return
	}
	var wg sync.WaitGroup
	for _, p := range parts[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gemmBlock(dst, a, b, k, n, p[0], p[1], p[2], p[3])
		}()
	}
	p := parts[0]
	gemmBlock(dst, a, b, k, n, p[0], p[1], p[2], p[3])
	wg.Wait()
}

// splitWorkers is how many goroutines share work multiply-adds: one per
// gemmMinWork, at most GOMAXPROCS.
func splitWorkers(work uint64) int {
	return int(min(uint64(runtime.GOMAXPROCS(0)), work/gemmMinWork))
}

// gemmBlock adds a[i0:i1, :]·b[:, j0:j1] to dst[i0:i1, j0:j1] (a is
// [*, k], b [k, n], dst [*, n]).
func gemmBlock(dst, a, b []uint64, k, n, i0, i1, j0, j1 int) {
	if i1-i0 < gemmPackRows {
		gemmRows(dst, a, b, k, n, i0, i1, j0, j1)
		return
	}
	gemmPacked(dst, a, b, k, n, i0, i1, j0, j1)
}

// gemmPacked is gemmBlock with B packed.
func gemmPacked(dst, a, b []uint64, k, n, i0, i1, j0, j1 int) {
	buf := getBuf((min(gemmNC, j1-j0) + 3) / 4 * (min(gemmKC, k)*4 + 8))
	defer putBuf(buf)
	for jc := j0; jc < j1; jc += gemmNC {
		nc := min(gemmNC, j1-jc)
		panels := (nc + 3) / 4
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			stride := kc*4 + 8 // a panel; +8 keeps panels off the same cache sets
			packed := (*buf)[:panels*stride]
			packB(packed, b, n, pc, kc, jc, nc, stride)
			for ic := i0; ic < i1; ic += gemmMC {
				ie := min(ic+gemmMC, i1)
				for q := range panels {
					j := jc + 4*q
					w := min(4, jc+nc-j)
					panel := packed[q*stride : q*stride+kc*4]
					i := ic
					for ; i+4 <= ie; i += 4 {
						if w == 4 {
							micro4x4(dst[i*n+j:], n, a[i*k+pc:], k, panel, 4, kc)
						} else {
							var tile [16]uint64
							micro4x4(tile[:], 4, a[i*k+pc:], k, panel, 4, kc)
							for r := range 4 {
								addInto(dst[(i+r)*n+j:(i+r)*n+j+w], tile[4*r:])
							}
						}
					}
					for ; i < ie; i++ {
						if w == 4 {
							micro1x4(dst[i*n+j:], a[i*k+pc:], panel, 4, kc)
						} else {
							var tile [4]uint64
							micro1x4(tile[:], a[i*k+pc:], panel, 4, kc)
							addInto(dst[i*n+j:i*n+j+w], tile[:])
						}
					}
				}
			}
		}
	}
}

// gemmRows is gemmBlock for a few rows, reading B in place: streamed row by
// row when B is large, else each 8-column strip of a k block once per pair
// of rows.
func gemmRows(dst, a, b []uint64, k, n, i0, i1, j0, j1 int) {
	if !useAsm {
		for i := i0; i < i1; i++ {
			rowGo(dst[i*n+j0:i*n+j1], a[i*k:(i+1)*k], b[j0:], n)
		}
		return
	}
	if uint64(k)*uint64(n) >= gemmStreamWords {
		for i := i0; i < i1; i++ {
			rowStream(dst[i*n+j0:i*n+j1], a[i*k:(i+1)*k], b[j0:], n)
		}
		return
	}
	for pc := 0; pc < k; pc += gemmKCRows {
		kc := min(gemmKCRows, k-pc)
		j := j0
		for ; j+8 <= j1; j += 8 {
			i := i0
			for ; i+2 <= i1; i += 2 {
				micro2x8(dst[i*n+j:], n, a[i*k+pc:], k, b[pc*n+j:], n, kc)
			}
			if i < i1 {
				micro1x8(dst[i*n+j:], a[i*k+pc:], b[pc*n+j:], n, kc)
			}
		}
		if j+4 <= j1 {
			for i := i0; i < i1; i++ {
				micro1x4(dst[i*n+j:], a[i*k+pc:], b[pc*n+j:], n, kc)
			}
			j += 4
		}
		for ; j < j1; j++ {
			for i := i0; i < i1; i++ {
				var s uint64
				for p, x := range a[i*k+pc : i*k+pc+kc] {
					s += x * b[(pc+p)*n+j]
				}
				dst[i*n+j] += s
			}
		}
	}
}

// streamRows is how many rows of B rowStream reads at once.
const streamRows = 16

// rowStream adds a·b[:, :len(dst)] to dst (b has row stride n) with the
// kernel dwTaps4: each call adds streamRows rows of b, scaled by the
// matching words of a, to dst, reading those rows front to back.
func rowStream(dst, a, b []uint64, n int) {
	w := len(dst)
	w4 := w &^ 3
	var offs [streamRows]int
	for t := range offs {
		offs[t] = 8 * t * n
	}
	k := len(a)
	for p := 0; p < k; p += streamRows {
		t := min(streamRows, k-p)
		if w4 > 0 {
			_ = b[(p+t-1)*n+w4-1]
			dwTaps4(&dst[0], &b[p*n], &a[p], &offs[0], t, w4)
		}
		for j := w4; j < w; j++ {
			var s uint64
			for q, x := range a[p : p+t] {
				s += x * b[(p+q)*n+j]
			}
			dst[j] += s
		}
	}
}

// rowGo adds a·b[:, :len(dst)] to dst (b has row stride n): the portable
// path for few rows, streaming rows of b four at a time (a quarter of the
// loads and stores of dst of a plain row-by-row loop).
func rowGo(dst, a, b []uint64, n int) {
	w := len(dst)
	p := 0
	for ; p+4 <= len(a); p += 4 {
		x0, x1, x2, x3 := a[p], a[p+1], a[p+2], a[p+3]
		b0 := b[p*n : p*n+w]
		b1 := b[(p+1)*n : (p+1)*n+w]
		b2 := b[(p+2)*n : (p+2)*n+w]
		b3 := b[(p+3)*n : (p+3)*n+w]
		for j := range dst {
			dst[j] += x0*b0[j] + x1*b1[j] + x2*b2[j] + x3*b3[j]
		}
	}
	for ; p < len(a); p++ {
		x := a[p]
		br := b[p*n : p*n+w]
		for j, v := range br {
			dst[j] += x * v
		}
	}
}

// packB copies b[pc:pc+kc, jc:jc+nc] into panels of 4 columns: panel q holds
// columns jc+4q.. as kc rows of 4 contiguous words at dst[q*stride:]; the
// columns past nc in the last panel are zero. Rows of b are read in order.
func packB(dst, b []uint64, n, pc, kc, jc, nc, stride int) {
	full := nc / 4
	for p := range kc {
		src := b[(pc+p)*n+jc : (pc+p)*n+jc+nc]
		o := p * 4
		for q := range full {
			s := src[4*q : 4*q+4 : 4*q+4]
			d := dst[q*stride+o : q*stride+o+4 : q*stride+o+4]
			d[0], d[1], d[2], d[3] = s[0], s[1], s[2], s[3]
		}
		if r := nc - 4*full; r > 0 {
			d := dst[full*stride+o : full*stride+o+4]
			copy(d, src[4*full:])
			clear(d[r:])
		}
	}
}

func addInto(dst, src []uint64) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// micro4x4 adds a[4, k]·b[k, 4] to c[4, 4] (row strides lda, ldb, ldc).
func micro4x4(c []uint64, ldc int, a []uint64, lda int, b []uint64, ldb int, k int) {
	if k == 0 {
		return
	}
	_ = c[3*ldc+3]
	_ = a[3*lda+k-1]
	_ = b[(k-1)*ldb+3]
	if useAsm {
		gemm4x4(&c[0], ldc, &a[0], lda, &b[0], ldb, k)
		return
	}
	kern2x4Go(c, ldc, a, lda, b, ldb, k)
	kern2x4Go(c[2*ldc:], ldc, a[2*lda:], lda, b, ldb, k)
}

// micro2x8 adds a[2, k]·b[k, 8] to c[2, 8].
func micro2x8(c []uint64, ldc int, a []uint64, lda int, b []uint64, ldb int, k int) {
	if k == 0 {
		return
	}
	_ = c[ldc+7]
	_ = a[lda+k-1]
	_ = b[(k-1)*ldb+7]
	if useAsm {
		gemm2x8(&c[0], ldc, &a[0], lda, &b[0], ldb, k)
		return
	}
	kern2x4Go(c, ldc, a, lda, b, ldb, k)
	kern2x4Go(c[4:], ldc, a, lda, b[4:], ldb, k)
}

// micro1x4 adds a[1, k]·b[k, 4] to c[1, 4].
func micro1x4(c, a, b []uint64, ldb, k int) {
	if k == 0 {
		return
	}
	_ = c[3]
	_ = a[k-1]
	_ = b[(k-1)*ldb+3]
	if useAsm {
		gemm1x4(&c[0], &a[0], &b[0], ldb, k)
		return
	}
	kern1xwGo(c[:4], a[:k], b, ldb)
}

// micro1x8 adds a[1, k]·b[k, 8] to c[1, 8].
func micro1x8(c, a, b []uint64, ldb, k int) {
	if k == 0 {
		return
	}
	_ = c[7]
	_ = a[k-1]
	_ = b[(k-1)*ldb+7]
	if useAsm {
		gemm1x8(&c[0], &a[0], &b[0], ldb, k)
		return
	}
	kern1xwGo(c[:4], a[:k], b, ldb)
	kern1xwGo(c[4:8], a[:k], b[4:], ldb)
}

// kern2x4Go is the portable 2x4 register tile (8 accumulators: more spill
// on amd64).
func kern2x4Go(c []uint64, ldc int, a []uint64, lda int, b []uint64, ldb int, k int) {
	a0, a1 := a[:k], a[lda:lda+k]
	var c00, c01, c02, c03, c10, c11, c12, c13 uint64
	for p, x := range a0 {
		y := a1[p]
		r := b[p*ldb : p*ldb+4 : p*ldb+4]
		b0, b1, b2, b3 := r[0], r[1], r[2], r[3]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		c10 += y * b0
		c11 += y * b1
		c12 += y * b2
		c13 += y * b3
	}
	r := c[:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
}

// kern1xwGo adds a·b[:, :len(c)] to c for len(c) <= 4.
func kern1xwGo(c, a, b []uint64, ldb int) {
	var c0, c1, c2, c3 uint64
	for p, x := range a {
		r := b[p*ldb : p*ldb+4 : p*ldb+4]
		c0 += x * r[0]
		c1 += x * r[1]
		c2 += x * r[2]
		c3 += x * r[3]
	}
	s := [4]uint64{c0, c1, c2, c3}
	for i := range c {
		c[i] += s[i]
	}
}

// Scratch buffers (packed panels, im2col matrices, product staging) are
// pooled so that steady-state products do not allocate.
var bufPool sync.Pool

func getBuf(n int) *[]uint64 {
	if p, ok := bufPool.Get().(*[]uint64); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]uint64, n)
	return &s
}

func putBuf(p *[]uint64) { bufPool.Put(p) }
