// Package fss is function secret sharing for two parties: a distributed
// comparison function (DCF) and the sign gate grid's engine builds on it.
//
// A DCF key pair for (alpha, beta) on n-bit inputs lets party b compute,
// from its key and a public x alone, a share V_b with
// V_0 + V_1 = beta if x < alpha, else 0 (mod 2^64, beta a vector of Width
// words); either key alone reveals nothing about alpha or beta. The
// construction is Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar and Rathee,
// "Function Secret Sharing for Mixed-Mode and Fixed-Point Secure
// Computation" (Eurocrypt 2021), Fig. 3, itself built on the tree of
// Boyle, Gilboa and Ishai, "Function Secret Sharing: Improvements and
// Extensions" (CCS 2016). The PRG is fixed-key AES (crypto/aes, AES-NI)
// in the Matyas-Meyer-Oseas mode with the orthomorphism
// sigma(x_L || x_R) = (x_L XOR x_R) || x_L of Guo, Katz, Wang and Yu,
// "Efficient and Secure Multiparty Computation from Fixed-Key Block
// Ciphers" (S&P 2020), as in Google's distributed_point_functions: one
// fixed key per output block, H_k(x) = AES_k(sigma(x)) XOR sigma(x).
// Seeds are 126 bits: a seed block's bit 0 is the control bit, bits 0
// and 1 of a seed correction word carry the two control-bit corrections.
//
// Use:
//  1. The dealer draws two root seeds per key, calls GenBatch (Gen for one
//     key; GenRange for part of a batch, concurrently) with the secret
//     alphas and betas, and gives party b its roots and the correction
//     words (the same words for both parties, laid out by Layout;
//     KeyWords per key).
//  2. Party b calls EvalBatch (Eval for one key, EvalRange for part of a
//     batch) with its roots, the correction words and the public inputs.
//
// Both run level by level over the whole batch, so that the AES blocks of
// a level are encrypted together (AES-NI assembly on amd64, four blocks in
// flight; crypto/aes elsewhere, or with the purego build tag: the same
// function, TestBlocksMatchCryptoAES and TestGoldenKey).
//
// The sign gate (SignAlpha, SignInput) turns a DCF on k-1 bits into shares
// of [x >= 0] for |x| < 2^(k-1), from the opened x + r: see SignInput.
package fss
