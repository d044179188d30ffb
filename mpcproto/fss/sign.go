package fss

import "fmt"

// The sign gate: shares of [x >= 0]·u_j for secret-shared x with
// |x| < 2^(k-1) (more precisely -2^(k-1) <= x < 2^(k-1)) and dealer-known
// u_j, from the opened x^ = x + r (r uniform mod 2^64, known to the
// dealer) and one DCF on k-1 bits, with no further round:
//
//  1. with z = (x^ + 2^(k-1)) mod 2^k and r' = r mod 2^k,
//     y = (z - r') mod 2^k = x + 2^(k-1), so [x >= 0] = bit k-1 of y;
//  2. bit k-1 of z - r' is z_h XOR m XOR c, where z_h and m are bit k-1 of
//     z and r', and c = [z mod 2^(k-1) < r mod 2^(k-1)] is the borrow;
//  3. the dealer keys the DCF with alpha = r mod 2^(k-1) and payload
//     beta_j = (1-2m)·u_j, and shares m·u_j: e·u_j = m·u_j + (1-2m)·c·u_j
//     with e = m XOR c;
//  4. d = [x >= 0] = e if z_h = 0, 1 - e if z_h = 1, so d·u_j is e·u_j or
//     u_j - e·u_j (u_0 = 1 gives d itself).
//
// Only x^ is opened, uniform as r is; the DCF key hides alpha and beta.

// MaxSignBits is the largest k of a sign gate: the whole ring.
const MaxSignBits = 64

// checkSignBits checks a sign gate's k.
func checkSignBits(k int) error {
	if k < 2 || k > MaxSignBits {
		return fmt.Errorf("%w: sign gate on %d bits (want 2..%d)", ErrParams, k, MaxSignBits)
	}
	return nil
}

// low returns x mod 2^n for n <= 64.
func low(x uint64, n int) uint64 {
	if n >= 64 {
		return x
	}
	return x & (1<<n - 1)
}

// SignAlpha is the dealer's step 3: from the mask r of a sign gate on k
// bits, the DCF's secret point alpha (on k-1 bits) and the bit m.
func SignAlpha(r uint64, k int) (alpha, m uint64, err error) {
	if err := checkSignBits(k); err != nil {
		return 0, 0, err
	}
	return low(r, k-1), (r >> (k - 1)) & 1, nil
}

// SignPayload writes the DCF payload of a sign gate, beta_0 = 1-2m and
// beta_j = (1-2m)·u[j-1], into beta (len(u)+1 words).
func SignPayload(m uint64, u, beta []uint64) {
	sg := sign(m & 1)
	beta[0] = sg
	for j, v := range u {
		beta[j+1] = sg * v
	}
}

// SignInput is the parties' step 1-2: from the opened x^ of a sign gate on
// k bits, the DCF input z mod 2^(k-1) and the bit z_h.
func SignInput(xhat uint64, k int) (z, zh uint64) {
	full := low(xhat+1<<(k-1), k)
	return low(full, k-1), full >> (k - 1)
}

// SignCombine is the parties' step 3-4 for one gate: from the DCF output
// shares v (v_j of (1-2m)·c·u_j, u_0 = 1), the shares mu of m·u_j (mu_0 of
// m) and the shares u of u_j (u_0: 1 for party 0, 0 for party 1), it
// writes the shares of d·u_j into out; all four have the same length.
func SignCombine(zh uint64, v, mu, u, out []uint64) {
	for j := range out {
		e := mu[j] + v[j]
		if zh == 1 {
			e = u[j] - e
		}
		out[j] = e
	}
}
