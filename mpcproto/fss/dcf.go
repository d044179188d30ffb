package fss

import (
	"errors"
	"fmt"
)

// MaxBits is the largest input length of a DCF.
const MaxBits = 64

// ErrParams marks bad DCF parameters (input bits, payload width, slice
// lengths).
var ErrParams = errors.New("fss: bad parameters")

// levelWords is the number of correction words of one level: the seed
// correction (2 words, its two low bits holding the left and right
// control-bit corrections) then the value correction (width words).
func levelWords(width int) int { return 2 + width }

// KeyWords is the number of correction words of a DCF key on bits-bit
// inputs with a width-word payload: bits levels, then the width words of
// the leaf correction. Both parties receive the same words.
func KeyWords(bits, width int) int { return bits*levelWords(width) + width }

// checkParams checks a DCF's input length, payload width and the length of
// its correction words.
func checkParams(bits, width, cwLen int) error {
	switch {
	case bits < 1 || bits > MaxBits:
		return fmt.Errorf("%w: %d input bits (want 1..%d)", ErrParams, bits, MaxBits)
	case width < 1 || width > MaxWidth:
		return fmt.Errorf("%w: payload of %d words (want 1..%d)", ErrParams, width, MaxWidth)
	case cwLen != KeyWords(bits, width):
		return fmt.Errorf("%w: %d correction words, want %d for %d bits and %d payload words",
			ErrParams, cwLen, KeyWords(bits, width), bits, width)
	}
	return nil
}

// sign is (-1)^t mod 2^64 as a multiplier: 1 or 2^64-1.
func sign(t uint64) uint64 { return 1 - 2*t }

// genSide is one party's expansion of both sides of a level during Gen.
type genSide struct {
	s [2]Seed
	t [2]uint64
	v [2][MaxWidth]uint64
}

// Gen writes into cw (KeyWords(bits, len(beta)) words) the correction
// words of the DCF key pair with roots roots[0], roots[1] for
// f(x) = beta if x < alpha, else 0, on bits-bit x (alpha's higher bits are
// ignored). It is BCG+21 Fig. 3, line by line:
//
//  1. t_0 = 0, t_1 = 1, V_alpha = 0; for each bit a of alpha, MSB first,
//     expand both parties' seeds on both sides; Keep is side a, Lose the
//     other;
//  2. s_CW = s_0^Lose XOR s_1^Lose;
//     V_CW = (-1)^t_1·(v_1^Lose - v_0^Lose - V_alpha), plus (-1)^t_1·beta
//     when Lose is left (a = 1: inputs going left are below alpha);
//  3. V_alpha += v_0^Keep - v_1^Keep + (-1)^t_1·V_CW;
//  4. t_CW^L = t_0^L XOR t_1^L XOR a XOR 1, t_CW^R = t_0^R XOR t_1^R XOR a;
//  5. s_b = s_b^Keep XOR t_b·s_CW, t_b = t_b^Keep XOR t_b·t_CW^Keep;
//  6. the leaf correction is (-1)^t_1·(Convert(s_1) - Convert(s_0) - V_alpha).
func Gen(alpha uint64, beta []uint64, bits int, roots [2]Seed, cw []uint64) error {
	w := len(beta)
	if err := checkParams(bits, w, len(cw)); err != nil {
		return err
	}
	var g prg
	s, t := roots, [2]uint64{0, 1}
	var va [MaxWidth]uint64
	var side [2]genSide
	for i := range bits {
		a := int(alpha>>(bits-1-i)) & 1
		for b := range 2 {
			for d := range 2 {
				side[b].s[d], side[b].t[d] = g.expand(s[b], d, side[b].v[d][:w])
			}
		}
		keep, lose := a, 1-a
		c := cw[i*levelWords(w) : (i+1)*levelWords(w)]
		scw := Seed{side[0].s[lose][0] ^ side[1].s[lose][0], side[0].s[lose][1] ^ side[1].s[lose][1]}
		tl := side[0].t[0] ^ side[1].t[0] ^ uint64(a) ^ 1
		tr := side[0].t[1] ^ side[1].t[1] ^ uint64(a)
		c[0], c[1] = scw[0]|tl|tr<<1, scw[1]
		sg := sign(t[1])
		for j := range w {
			v := sg * (side[1].v[lose][j] - side[0].v[lose][j] - va[j])
			if lose == 0 {
				v += sg * beta[j]
			}
			c[2+j] = v
			va[j] += side[0].v[keep][j] - side[1].v[keep][j] + sg*v
		}
		tk := [2]uint64{tl, tr}[keep]
		for b := range 2 {
			s[b] = side[b].s[keep]
			if t[b] == 1 {
				s[b][0] ^= scw[0]
				s[b][1] ^= scw[1]
			}
			t[b] = side[b].t[keep] ^ t[b]&tk
		}
	}
	var c0, c1 [MaxWidth]uint64
	g.values(finalKey, s[0], c0[:w])
	g.values(finalKey, s[1], c1[:w])
	leaf := cw[bits*levelWords(w):]
	sg := sign(t[1])
	for j := range w {
		leaf[j] = sg * (c1[j] - c0[j] - va[j])
	}
	return nil
}

// Eval writes into out (len(out) = the payload width) party's share of
// f(x) for the key (root, cw) on bits-bit inputs (x's higher bits are
// ignored). BCG+21 Fig. 3, Eval: from t = party, at each level expand the
// side x_i of the seed only, correct it with t·(s_CW, t_CW^side), add
// (-1)^party·(v + t·V_CW) to the share, then (-1)^party·(Convert(s) +
// t·leaf) at the leaf.
func Eval(party int, root Seed, cw []uint64, bits int, x uint64, out []uint64) error {
	if party != 0 && party != 1 {
		return fmt.Errorf("%w: party %d (want 0 or 1)", ErrParams, party)
	}
	if err := checkParams(bits, len(out), len(cw)); err != nil {
		return err
	}
	var g prg
	g.eval(party, root, cw, bits, x, out)
	return nil
}

// eval is Eval on checked parameters.
func (g *prg) eval(party int, root Seed, cw []uint64, bits int, x uint64, out []uint64) {
	w := len(out)
	s, t := root, uint64(party)
	var acc, v [MaxWidth]uint64
	for i := range bits {
		d := int(x>>(bits-1-i)) & 1
		c := cw[i*levelWords(w) : (i+1)*levelWords(w)]
		ns, nt := g.expand(s, d, v[:w])
		if t == 1 {
			ns[0] ^= c[0] & seedMask
			ns[1] ^= c[1]
			nt ^= (c[0] >> d) & 1
		}
		for j := range w {
			acc[j] += v[j] + t*c[2+j]
		}
		s, t = ns, nt
	}
	g.values(finalKey, s, v[:w])
	leaf := cw[bits*levelWords(w):]
	sg := sign(uint64(party))
	for j := range w {
		out[j] = sg * (acc[j] + v[j] + t*leaf[j])
	}
}

// EvalBatch evaluates len(xs) keys, key i at xs[i]: roots[i] with the
// correction words cws[i*kw:(i+1)*kw] (kw = KeyWords(bits, width)),
// writing its width-word share at out[i*width:].
func EvalBatch(party int, roots []Seed, cws []uint64, bits, width int, xs, out []uint64) error {
	if party != 0 && party != 1 {
		return fmt.Errorf("%w: party %d (want 0 or 1)", ErrParams, party)
	}
	kw := KeyWords(bits, width)
	if err := checkParams(bits, width, kw); err != nil {
		return err
	}
	n := len(xs)
	if len(roots) != n || len(cws) != n*kw || len(out) != n*width {
		return fmt.Errorf("%w: batch of %d inputs with %d roots, %d correction words (want %d) and %d output words (want %d)",
			ErrParams, n, len(roots), len(cws), n*kw, len(out), n*width)
	}
	var g prg
	for i, x := range xs {
		g.eval(party, roots[i], cws[i*kw:(i+1)*kw], bits, x, out[i*width:(i+1)*width])
	}
	return nil
}
