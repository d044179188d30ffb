//go:build amd64 && !purego

#include "textflag.h"

// AVX2 micro-kernels of the uint64 (Z_2^64) matrix product. AVX2 has no
// 64x64-bit lane multiply, so each product is split in 32-bit halves:
//
//	a·b mod 2^64 = lo(a)·lo(b) + 2^32·(lo(a)·hi(b) + hi(a)·lo(b)) mod 2^64
//
// VPMULUDQ gives the full 64-bit lo·lo; VPMULLD of a (broadcast) by b with
// its two halves swapped gives both cross terms mod 2^32 in the two 32-bit
// halves of each lane, accumulated with VPADDD (only their sum mod 2^32
// matters: it is shifted left by 32). At the end of the k loop a lane's
// cross sum is (x >> 32) + x, shifted left by 32, added to the lo·lo sum.
// Two multiplies per four products; everything wraps mod 2^64 exactly.
//
// Every kernel adds its tile to C (C += A·B): C rows are ldc words apart,
// A rows lda words apart (a row is contiguous over k), B rows ldb words
// apart (4 or 8 contiguous columns are read per row).

// combine folds the cross accumulator X into the lo accumulator L (T is a
// scratch register).
#define COMBINE(X, L, T) \
	VPSRLQ $32, X, T; \
	VPADDQ T, X, X; \
	VPSLLQ $32, X, X; \
	VPADDQ X, L, L

// ROW4 accumulates one row of a 4x4 tile for one k: Y4 holds b, Y5 b with
// halves swapped; R is the row pointer, BX the byte offset of k.
#define ROW4(R, L, X, TB, TL, TX) \
	VPBROADCASTQ (R)(BX*1), TB; \
	VPMULUDQ Y4, TB, TL; \
	VPMULLD Y5, TB, TX; \
	VPADDQ TL, L, L; \
	VPADDD TX, X, X

// func gemm4x4(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int)
TEXT ·gemm4x4(SB), NOSPLIT, $0-56
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), R8
	SHLQ $3, R8
	MOVQ a+16(FP), SI
	MOVQ lda+24(FP), R9
	SHLQ $3, R9
	MOVQ b+32(FP), DX
	MOVQ ldb+40(FP), R10
	SHLQ $3, R10
	MOVQ k+48(FP), CX
	SHLQ $3, CX
	LEAQ (SI)(R9*1), R11
	LEAQ (R11)(R9*1), R12
	LEAQ (R12)(R9*1), R13
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11
	XORQ BX, BX
	TESTQ CX, CX
	JZ store4x4

loop4x4:
	VMOVDQU (DX), Y4
	VPSHUFD $0xb1, Y4, Y5
	ROW4(SI, Y0, Y8, Y6, Y12, Y13)
	ROW4(R11, Y1, Y9, Y7, Y14, Y15)
	ROW4(R12, Y2, Y10, Y6, Y12, Y13)
	ROW4(R13, Y3, Y11, Y7, Y14, Y15)
	ADDQ R10, DX
	ADDQ $8, BX
	CMPQ BX, CX
	JLT loop4x4

store4x4:
	COMBINE(Y8, Y0, Y12)
	COMBINE(Y9, Y1, Y13)
	COMBINE(Y10, Y2, Y14)
	COMBINE(Y11, Y3, Y15)
	VPADDQ (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	ADDQ R8, DI
	VPADDQ (DI), Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ R8, DI
	VPADDQ (DI), Y2, Y2
	VMOVDQU Y2, (DI)
	ADDQ R8, DI
	VPADDQ (DI), Y3, Y3
	VMOVDQU Y3, (DI)
	VZEROUPPER
	RET

// func gemm1x4(c *uint64, a *uint64, b *uint64, ldb int, k int)
TEXT ·gemm1x4(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldb+24(FP), R10
	SHLQ $3, R10
	MOVQ k+32(FP), CX
	SHLQ $3, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y8, Y8, Y8
	XORQ BX, BX
	TESTQ CX, CX
	JZ store1x4

loop1x4:
	VMOVDQU (DX), Y4
	VPSHUFD $0xb1, Y4, Y5
	ROW4(SI, Y0, Y8, Y6, Y12, Y13)
	ADDQ R10, DX
	ADDQ $8, BX
	CMPQ BX, CX
	JLT loop1x4

store1x4:
	COMBINE(Y8, Y0, Y12)
	VPADDQ (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	VZEROUPPER
	RET

// func gemm1x8(c *uint64, a *uint64, b *uint64, ldb int, k int)
TEXT ·gemm1x8(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldb+24(FP), R10
	SHLQ $3, R10
	MOVQ k+32(FP), CX
	SHLQ $3, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	XORQ BX, BX
	TESTQ CX, CX
	JZ store1x8

loop1x8:
	VMOVDQU (DX), Y4
	VMOVDQU 32(DX), Y6
	VPSHUFD $0xb1, Y4, Y5
	VPSHUFD $0xb1, Y6, Y7
	VPBROADCASTQ (SI)(BX*1), Y10
	VPMULUDQ Y4, Y10, Y12
	VPMULLD Y5, Y10, Y13
	VPMULUDQ Y6, Y10, Y14
	VPMULLD Y7, Y10, Y15
	VPADDQ Y12, Y0, Y0
	VPADDD Y13, Y8, Y8
	VPADDQ Y14, Y1, Y1
	VPADDD Y15, Y9, Y9
	ADDQ R10, DX
	ADDQ $8, BX
	CMPQ BX, CX
	JLT loop1x8

store1x8:
	COMBINE(Y8, Y0, Y12)
	COMBINE(Y9, Y1, Y13)
	VPADDQ (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	VPADDQ 32(DI), Y1, Y1
	VMOVDQU Y1, 32(DI)
	VZEROUPPER
	RET

// func gemm2x8(c *uint64, ldc int, a *uint64, lda int, b *uint64, ldb int, k int)
TEXT ·gemm2x8(SB), NOSPLIT, $0-56
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), R8
	SHLQ $3, R8
	MOVQ a+16(FP), SI
	MOVQ lda+24(FP), R9
	SHLQ $3, R9
	MOVQ b+32(FP), DX
	MOVQ ldb+40(FP), R10
	SHLQ $3, R10
	MOVQ k+48(FP), CX
	SHLQ $3, CX
	LEAQ (SI)(R9*1), R11
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11
	XORQ BX, BX
	TESTQ CX, CX
	JZ store2x8

loop2x8:
	VMOVDQU (DX), Y4
	VMOVDQU 32(DX), Y6
	VPSHUFD $0xb1, Y4, Y5
	VPSHUFD $0xb1, Y6, Y7
	VPBROADCASTQ (SI)(BX*1), Y12
	VPMULUDQ Y4, Y12, Y13
	VPMULLD Y5, Y12, Y14
	VPADDQ Y13, Y0, Y0
	VPADDD Y14, Y8, Y8
	VPMULUDQ Y6, Y12, Y13
	VPMULLD Y7, Y12, Y14
	VPADDQ Y13, Y1, Y1
	VPADDD Y14, Y9, Y9
	VPBROADCASTQ (R11)(BX*1), Y15
	VPMULUDQ Y4, Y15, Y13
	VPMULLD Y5, Y15, Y14
	VPADDQ Y13, Y2, Y2
	VPADDD Y14, Y10, Y10
	VPMULUDQ Y6, Y15, Y13
	VPMULLD Y7, Y15, Y14
	VPADDQ Y13, Y3, Y3
	VPADDD Y14, Y11, Y11
	ADDQ R10, DX
	ADDQ $8, BX
	CMPQ BX, CX
	JLT loop2x8

store2x8:
	COMBINE(Y8, Y0, Y12)
	COMBINE(Y9, Y1, Y13)
	COMBINE(Y10, Y2, Y14)
	COMBINE(Y11, Y3, Y15)
	VPADDQ (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	VPADDQ 32(DI), Y1, Y1
	VMOVDQU Y1, 32(DI)
	ADDQ R8, DI
	VPADDQ (DI), Y2, Y2
	VMOVDQU Y2, (DI)
	VPADDQ 32(DI), Y3, Y3
	VMOVDQU Y3, 32(DI)
	VZEROUPPER
	RET

// func dwTaps4(d *uint64, s *uint64, w *uint64, offs *int, taps int, n int)
//
// The depthwise convolution kernel: for x in [0, n) (n a positive multiple
// of 4), d[x] += Σ_{t<taps} w[t]·s[x + offs[t]/8] (offs in bytes, taps >= 1).
// Each tap is a shifted row of the input (any rows, columns or stride
// phases: the caller lays them out); four outputs are summed in registers
// over all taps and stored once.
TEXT ·dwTaps4(SB), NOSPLIT, $0-48
	MOVQ d+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ w+16(FP), R8
	MOVQ offs+24(FP), R9
	MOVQ taps+32(FP), R10
	MOVQ n+40(FP), CX
	SHRQ $2, CX

dwblock:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	XORQ AX, AX

dwtap:
	MOVQ (R9)(AX*8), R11
	VMOVDQU (SI)(R11*1), Y2
	VPSHUFD $0xb1, Y2, Y3
	VPBROADCASTQ (R8)(AX*8), Y4
	VPMULUDQ Y2, Y4, Y5
	VPMULLD Y3, Y4, Y6
	VPADDQ Y5, Y0, Y0
	VPADDD Y6, Y1, Y1
	INCQ AX
	CMPQ AX, R10
	JLT dwtap

	COMBINE(Y1, Y0, Y7)
	VPADDQ (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ dwblock
	VZEROUPPER
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
