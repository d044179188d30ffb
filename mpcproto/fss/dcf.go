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

// Gen writes into cw (KeyWords(bits, len(beta)) words) the correction
// words of the DCF key pair with roots roots[0], roots[1] for
// f(x) = beta if x < alpha, else 0, on bits-bit x (alpha's higher bits are
// ignored): GenBatch for one key.
func Gen(alpha uint64, beta []uint64, bits int, roots [2]Seed, cw []uint64) error {
	return GenBatch([]uint64{alpha}, beta, bits, len(beta), []Seed{roots[0]}, []Seed{roots[1]}, cw)
}

// Layout locates the correction words of a batch of Keys keys (GenBatch)
// in one slice, level-major, so that a batch evaluation reads each level
// contiguously: level l of key i at Level(i, l) (levelWords each: the
// seed correction, its two low bits holding the control-bit corrections,
// then the value correction), then the leaf corrections, key i's at
// Leaf(i) (Width words). For one key it is the key's correction words in
// order.
type Layout struct{ Bits, Width, Keys int }

// Words is the number of correction words of the batch.
func (y Layout) Words() int { return y.Keys * KeyWords(y.Bits, y.Width) }

// Level is the offset of level l of key i.
func (y Layout) Level(i, l int) int { return (l*y.Keys + i) * levelWords(y.Width) }

// Leaf is the offset of key i's leaf correction.
func (y Layout) Leaf(i int) int { return y.Bits*y.Keys*levelWords(y.Width) + i*y.Width }

// GenBatch generates len(alphas) key pairs at once, key i for alphas[i]
// with payload betas[i*width:(i+1)*width] and roots roots0[i] (party 0)
// and roots1[i] (party 1), writing the correction words into cws as
// Layout{bits, width, len(alphas)} lays them out. It is BCG+21 Fig. 3,
// line by line, for every key:
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
func GenBatch(alphas, betas []uint64, bits, width int, roots0, roots1 []Seed, cws []uint64) error {
	return GenRange(Layout{Bits: bits, Width: width, Keys: len(alphas)}, cws, 0, alphas, betas, roots0, roots1)
}

// GenRange is GenBatch for keys lo .. lo+len(alphas)-1 of the batch y
// (cws holds its y.Words() correction words; the others are left as they
// are): disjoint ranges of one batch may be generated concurrently.
func GenRange(y Layout, cws []uint64, lo int, alphas, betas []uint64, roots0, roots1 []Seed) error {
	n, width := len(alphas), y.Width
	if err := checkParams(y.Bits, width, KeyWords(y.Bits, width)); err != nil {
		return err
	}
	if len(betas) != n*width || len(roots0) != n || len(roots1) != n || len(cws) != y.Words() || lo < 0 || lo+n > y.Keys {
		return fmt.Errorf("%w: keys %d..%d of %d with %d payload words, %d and %d roots and %d correction words (want %d)",
			ErrParams, lo, lo+n, y.Keys, len(betas), len(roots0), len(roots1), len(cws), y.Words())
	}
	g := newGen(roots0, roots1, width)
	for l := range y.Bits {
		g.level(alphas, betas, y, lo, l, cws)
	}
	g.leaf(y, lo, cws)
	return nil
}

// gen is the state of GenBatch: both parties' seeds and control bits per
// key, V_alpha, and the expansion of the current level.
type gen struct {
	g   prg
	w   int
	s   [2][]Seed
	t   [2][]uint64
	va  []uint64
	exp [2][2]expansion // [party][side]
}

// expansion is one side of G for a set of seeds.
type expansion struct {
	s    []Seed
	t, v []uint64
}

func newExpansion(n, w int) expansion {
	return expansion{s: make([]Seed, n), t: make([]uint64, n), v: make([]uint64, n*w)}
}

func newGen(roots0, roots1 []Seed, w int) *gen {
	n := len(roots0)
	g := &gen{w: w, s: [2][]Seed{append([]Seed(nil), roots0...), append([]Seed(nil), roots1...)},
		t: [2][]uint64{make([]uint64, n), make([]uint64, n)}, va: make([]uint64, n*w)}
	for i := range g.t[1] {
		g.t[1][i] = 1
	}
	for b := range 2 {
		for d := range 2 {
			g.exp[b][d] = newExpansion(n, w)
		}
	}
	return g
}

// level is steps 1-5 of GenBatch for level l of every key.
func (g *gen) level(alphas, betas []uint64, y Layout, lo, l int, cws []uint64) {
	w, lw, bits := g.w, levelWords(g.w), y.Bits
	for b := range 2 {
		g.g.load(g.s[b])
		for d := range 2 {
			e := &g.exp[b][d]
			g.g.expand(d, w, e.s, e.t, e.v)
		}
	}
	for i, alpha := range alphas {
		a := int(alpha>>(bits-1-l)) & 1
		keep, lose := a, 1-a
		l0, l1 := &g.exp[0][lose], &g.exp[1][lose]
		at := y.Level(lo+i, l)
		c := cws[at : at+lw]
		scw := Seed{l0.s[i][0] ^ l1.s[i][0], l0.s[i][1] ^ l1.s[i][1]}
		tl := g.exp[0][0].t[i] ^ g.exp[1][0].t[i] ^ uint64(a) ^ 1
		tr := g.exp[0][1].t[i] ^ g.exp[1][1].t[i] ^ uint64(a)
		c[0], c[1] = scw[0]|tl|tr<<1, scw[1]
		sg := sign(g.t[1][i])
		k0, k1 := &g.exp[0][keep], &g.exp[1][keep]
		for j := range w {
			// plus (-1)^t_1·beta when Lose is left (a = 1)
			v := sg * (l1.v[i*w+j] - l0.v[i*w+j] - g.va[i*w+j] + uint64(a)*betas[i*w+j])
			c[2+j] = v
			g.va[i*w+j] += k0.v[i*w+j] - k1.v[i*w+j] + sg*v
		}
		tk := [2]uint64{tl, tr}[keep]
		for b := range 2 {
			s, mask := g.exp[b][keep].s[i], -g.t[b][i]
			s[0] ^= scw[0] & mask
			s[1] ^= scw[1] & mask
			g.s[b][i] = s
			g.t[b][i] = g.exp[b][keep].t[i] ^ g.t[b][i]&tk
		}
	}
}

// leaf is step 6 of GenBatch for every key.
func (g *gen) leaf(y Layout, lo int, cws []uint64) {
	w := g.w
	c0, c1 := make([]uint64, len(g.va)), make([]uint64, len(g.va))
	g.g.load(g.s[0])
	g.g.values(finalKey, w, c0)
	g.g.load(g.s[1])
	g.g.values(finalKey, w, c1)
	for i := range g.s[0] {
		leaf := cws[y.Leaf(lo+i) : y.Leaf(lo+i)+w]
		sg := sign(g.t[1][i])
		for j := range w {
			leaf[j] = sg * (c1[i*w+j] - c0[i*w+j] - g.va[i*w+j])
		}
	}
}

// Eval writes into out (len(out) = the payload width) party's share of
// f(x) for the key (root, cw) on bits-bit inputs (x's higher bits are
// ignored): EvalBatch for one key.
func Eval(party int, root Seed, cw []uint64, bits int, x uint64, out []uint64) error {
	return EvalBatch(party, []Seed{root}, cw, bits, len(out), []uint64{x}, out)
}

// EvalBatch evaluates len(xs) keys, key i at xs[i]: roots[i] with the
// correction words laid out by Layout{bits, width, len(xs)} in cws,
// writing its width-word share at out[i*width:]: EvalRange over the
// whole batch.
func EvalBatch(party int, roots []Seed, cws []uint64, bits, width int, xs, out []uint64) error {
	return EvalRange(party, Layout{Bits: bits, Width: width, Keys: len(xs)}, cws, 0, roots, xs, out)
}

// EvalRange evaluates keys lo .. lo+len(xs)-1 of the batch y (cws holds
// its y.Words() correction words), key lo+i at xs[i] with root roots[i],
// writing its y.Width-word share at out[i*y.Width:]. BCG+21 Fig. 3, Eval:
// from t = party, at each level expand the side x_i of the seed only,
// correct it with t·(s_CW, t_CW^side), add (-1)^party·(v + t·V_CW) to the
// share, then (-1)^party·(Convert(s) + t·leaf) at the leaf. The keys of a
// level going the same side are expanded together.
func EvalRange(party int, y Layout, cws []uint64, lo int, roots []Seed, xs, out []uint64) error {
	if party != 0 && party != 1 {
		return fmt.Errorf("%w: party %d (want 0 or 1)", ErrParams, party)
	}
	if err := checkParams(y.Bits, y.Width, KeyWords(y.Bits, y.Width)); err != nil {
		return err
	}
	n := len(xs)
	if y.Keys < 0 || len(cws) != y.Words() || lo < 0 || lo+n > y.Keys || len(roots) != n || len(out) != n*y.Width {
		return fmt.Errorf("%w: keys %d..%d of %d with %d correction words (want %d), %d roots and %d output words (want %d)",
			ErrParams, lo, lo+n, y.Keys, len(cws), y.Words(), len(roots), len(out), n*y.Width)
	}
	e := newEval(party, roots, y.Width)
	for l := range y.Bits {
		e.level(y, cws, lo, xs, l)
	}
	e.leaf(y, cws, lo, out)
	return nil
}

// evaluation is the state of EvalBatch: every key's seed, control bit
// and share so far, and the scratch space of a level.
type evaluation struct {
	g     prg
	party int
	w     int
	s     []Seed
	t     []uint64
	acc   []uint64
	idx   []int
}

func newEval(party int, roots []Seed, w int) *evaluation {
	n := len(roots)
	e := &evaluation{party: party, w: w, s: append([]Seed(nil), roots...), t: make([]uint64, n),
		acc: make([]uint64, n*w), idx: make([]int, 2*n)}
	for i := range e.t {
		e.t[i] = uint64(party)
	}
	return e
}

// level evaluates level l of every key, one side at a time.
func (e *evaluation) level(y Layout, cws []uint64, lo int, xs []uint64, l int) {
	shift := y.Bits - 1 - l
	// partition the keys by the side they take, without a branch (the
	// side is a random bit): side d's keys at idx[d*n:][:cnt[d]]
	n := len(xs)
	var cnt [2]int
	for i, x := range xs {
		d := int(x>>shift) & 1
		e.idx[d*n+cnt[d]] = i
		cnt[d]++
	}
	for d := range 2 {
		m := cnt[d]
		if m == 0 {
			continue
		}
		side := e.idx[d*n : d*n+m]
		e.g.sig = e.g.sig[:0]
		for _, i := range side {
			e.g.sig = append(e.g.sig, sigma(e.s[i]))
		}
		e.step(y.Level(lo, l), d, side, cws)
	}
}

// step is level l of the keys side (all going side d) from the level's
// first correction word, base: expand each key's seed on side d (the seed
// block and the value blocks, AES over the batch), correct it with
// t·(s_CW, t_CW^d) and add v + t·V_CW to the share, in one pass.
func (e *evaluation) step(base, d int, side []int, cws []uint64) {
	w, lw := e.w, levelWords(e.w)
	e.g.blocks(d*blocksPerSide, 1+(w+1)/2)
	sig, b0, b1, b2 := e.g.sig, e.g.blk[0], e.g.blk[1], e.g.blk[2]
	for j, i := range side {
		sg := sig[j]
		s0 := b0[j][0] ^ sg[0]
		ns, nt := Seed{s0 & seedMask, b0[j][1] ^ sg[1]}, s0&1
		c := cws[base+i*lw : base+(i+1)*lw]
		t := e.t[i]
		mask := -t // the correction applies when t = 1: no branch on a random bit
		ns[0] ^= c[0] & seedMask & mask
		ns[1] ^= c[1] & mask
		nt ^= (c[0] >> d) & t
		acc := e.acc[i*w : (i+1)*w]
		acc[0] += (b1[j][0] ^ sg[0]) + t*c[2]
		if w > 1 {
			acc[1] += (b1[j][1] ^ sg[1]) + t*c[3]
		}
		if w > 2 {
			acc[2] += (b2[j][0] ^ sg[0]) + t*c[4]
		}
		if w > 3 {
			acc[3] += (b2[j][1] ^ sg[1]) + t*c[5]
		}
		e.s[i], e.t[i] = ns, nt
	}
}

// leaf adds every key's leaf term and writes the shares.
func (e *evaluation) leaf(y Layout, cws []uint64, lo int, out []uint64) {
	w := e.w
	v := make([]uint64, len(e.s)*w)
	e.g.load(e.s)
	e.g.values(finalKey, w, v)
	sg := sign(uint64(e.party))
	for i := range e.s {
		leaf := cws[y.Leaf(lo+i) : y.Leaf(lo+i)+w]
		for q := range w {
			out[i*w+q] = sg * (e.acc[i*w+q] + v[i*w+q] + e.t[i]*leaf[q])
		}
	}
}

// Key returns key i's correction words in the order of a single key
// (Layout{Bits, Width, 1}), copied from the batch's cws.
func (y Layout) Key(cws []uint64, i int) []uint64 {
	lw := levelWords(y.Width)
	out := make([]uint64, 0, KeyWords(y.Bits, y.Width))
	for l := range y.Bits {
		out = append(out, cws[y.Level(i, l):y.Level(i, l)+lw]...)
	}
	return append(out, cws[y.Leaf(i):y.Leaf(i)+y.Width]...)
}
