package fss

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// split returns additive shares of v.
func split(rng *rand.Rand, v uint64) [2]uint64 {
	s := rng.Uint64()
	return [2]uint64{s, v - s}
}

// signGate runs the sign gate on x with mask r and multiplicands u as the
// dealer and both parties would, and returns the reconstructed d·u_j
// (j = 0 for d itself).
func signGate(t *testing.T, rng *rand.Rand, k int, x, r uint64, u []uint64) []uint64 {
	t.Helper()
	alpha, m, err := SignAlpha(r, k)
	if err != nil {
		t.Fatal(err)
	}
	w := len(u) + 1
	beta := make([]uint64, w)
	SignPayload(m, u, beta)
	keys, err := NewKeys(alpha, beta, k-1, [2]Seed{randSeed(rng), randSeed(rng)})
	if err != nil {
		t.Fatal(err)
	}
	var mu, us [2][]uint64 // shares of m·u_j and u_j, j = 0 being 1
	for j := range w {
		uj := uint64(1)
		if j > 0 {
			uj = u[j-1]
		}
		a, b := split(rng, m*uj), split(rng, uj)
		for p := range 2 {
			mu[p] = append(mu[p], a[p])
			us[p] = append(us[p], b[p])
		}
	}
	xhat := x + r // the one opened value
	z, zh := SignInput(xhat, k)
	out := make([]uint64, w)
	for p := range 2 {
		v, share := make([]uint64, w), make([]uint64, w)
		if err := keys[p].Eval(z, v); err != nil {
			t.Fatal(err)
		}
		SignCombine(zh, v, mu[p], us[p], share)
		for j := range out {
			out[j] += share[j]
		}
	}
	return out
}

func TestSignGate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{2, 8, 40, 47, 63, 64} {
		half := uint64(1) << (k - 1)
		xs := []uint64{0, ^uint64(0), 1, half - 1, -(half - 1), -half, 2, ^uint64(1)}
		for range 20 {
			v := low(rng.Uint64(), k-1)
			if rng.IntN(2) == 0 {
				v = -v - 1 // down to -2^(k-1)
			}
			xs = append(xs, v)
		}
		for _, x := range xs {
			if v := int64(x); k < 64 && (v >= int64(half) || v < -int64(half)) {
				continue // outside the gate's domain
			}
			for _, r := range []uint64{rng.Uint64(), 0, ^uint64(0), half, half - 1} {
				u := []uint64{rng.Uint64(), rng.Uint64()}
				got := signGate(t, rng, k, x, r, u)
				d := uint64(0)
				if int64(x) >= 0 {
					d = 1
				}
				want := []uint64{d, d * u[0], d * u[1]}
				for j := range want {
					if got[j] != want[j] {
						t.Fatalf("k %d x %d r %#x: word %d is %#x, want %#x", k, int64(x), r, j, got[j], want[j])
					}
				}
			}
		}
	}
	if _, _, err := SignAlpha(1, 1); err == nil {
		t.Fatal("SignAlpha accepted k = 1")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	keys, err := NewKeys(12345, []uint64{7, 9}, 20, [2]Seed{randSeed(rng), randSeed(rng)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := k.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := UnmarshalKey(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := k2.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip differs (%v)", err)
		}
	}
	good, _ := keys[0].MarshalBinary()
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:10] }},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"version", func(b []byte) []byte { b[4] = 9; return b }},
		{"party", func(b []byte) []byte { b[5] = 2; return b }},
		{"bits", func(b []byte) []byte { b[6] = 21; return b }},
		{"width", func(b []byte) []byte { b[7] = 0; return b }},
		{"ragged", func(b []byte) []byte { return b[:len(b)-3] }},
		{"missing word", func(b []byte) []byte { return b[:len(b)-8] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalKey(tc.edit(bytes.Clone(good))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzUnmarshalKey(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	keys, err := NewKeys(3, []uint64{1}, 5, [2]Seed{randSeed(rng), randSeed(rng)})
	if err != nil {
		f.Fatal(err)
	}
	b, _ := keys[1].MarshalBinary()
	f.Add(b)
	f.Add([]byte("GRDF\x01\x00\x40\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := UnmarshalKey(data)
		if err != nil {
			return
		}
		out := make([]uint64, k.Width)
		if err := k.Eval(^uint64(0), out); err != nil {
			t.Fatalf("decoded key does not evaluate: %v", err)
		}
		again, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}
