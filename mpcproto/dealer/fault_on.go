//go:build gridfault

package dealer

import (
	"sync/atomic"

	"github.com/gridmpc/grid/mpcproto/share"
)

// Faults are deliberate flaws of the dealer that keep every output correct
// and only break privacy, for tests to check that the privacy checks detect
// them (the engine's fault tests). They exist only in builds with the
// gridfault tag.
type Faults struct {
	// ReluAEqualsR deals every sign test (ReLU) with a = r: the holders
	// open c = x + r and d = x - a, so c + d = 2x gives every holder every
	// pre-activation.
	ReluAEqualsR bool
	// RhoZero deals rho = 0 on the bits a sign test or a max uses: the
	// opened e = b XOR rho is then the comparison bits themselves.
	RhoZero bool
	// MaskStreamRestart restarts a party's mask stream for every masked
	// weight (a misplaced share.NewPRG in expandMasks): the masks of two
	// weights then share their first words, and the opened
	// F1 - F2 = W1 - W2 there gives the holders weight differences.
	MaskStreamRestart bool
	// GateMaskReuse deals every element of a two-party sign gate (a DCF
	// comparison) the mask of its first element: the holders open
	// x_i + r and x_j + r, whose difference is x_i - x_j.
	GateMaskReuse bool
	// GateRootsZero gives both holders the root seed 0 for every DCF key
	// (a missing draw): the keys are then a function of the mask alone,
	// their seed correction words are 0, and either holder can evaluate
	// both keys and find the mask.
	GateRootsZero bool
}

var faults FaultSwitch[Faults]

// SetFaults switches on exactly the faults in f for every later deal and
// bundle expansion in the process (dealer and parties alike, so the
// material stays consistent) and returns a function that restores the
// previous set. Tests that use it must not run in parallel with other
// dealing tests.
func SetFaults(f Faults) (restore func()) { return faults.Set(f) }

// ActiveFaults returns the faults switched on.
func ActiveFaults() Faults { return faults.Active() }

// FaultSwitch holds a process-wide value of test instruments of type T
// (the dealer's Faults and draw hook, the engine's Faults): tests switch
// it with Set, which returns the function that restores the previous
// value.
type FaultSwitch[T any] struct{ p atomic.Pointer[T] }

// Set switches the value to f and returns a function that restores the
// previous one.
func (s *FaultSwitch[T]) Set(f T) (restore func()) {
	prev := s.p.Swap(&f)
	return func() { s.p.Store(prev) }
}

// Active returns the value switched on, or T's zero value.
func (s *FaultSwitch[T]) Active() T {
	if f := s.p.Load(); f != nil {
		return *f
	}
	var zero T
	return zero
}

// applyFaults changes a request's freshly drawn random parts: every
// party's shares in Expand and their values in the dealer, which stay
// consistent because each change is linear (a copy, clearing bits of an
// XOR-shared part).
func applyFaults(r *Request, parts [][]uint64) {
	f := ActiveFaults()
	if r.Kind == KindReluGate || r.Kind == KindTruncReluGate {
		applyGateFaults(f, r.Kind, parts)
		return
	}
	if r.Kind != KindSign && r.Kind != KindMax || !f.ReluAEqualsR && !f.RhoZero {
		return
	}
	c := (&Material{Req: *r, Parts: parts}).Comparison()
	if f.ReluAEqualsR && r.Kind == KindSign {
		copy(c.A, c.R)
	}
	if f.RhoZero {
		clearBits(c.Rho, len(c.RhoArith))
	}
}

// applyGateFaults is applyFaults for a sign gate of kind k.
func applyGateFaults(f Faults, k Kind, parts [][]uint64) {
	if r := parts[gateR]; f.GateMaskReuse && len(r) > 0 {
		for i := range r {
			r[i] = r[0]
		}
	}
	if f.GateRootsZero {
		clear(parts[gateBase(k)])
	}
}

// clearBits zeroes the first n bits of a packed bit vector.
func clearBits(words []uint64, n int) {
	for i := 0; i < n; i++ {
		words[i/64] &^= 1 << (i % 64)
	}
}

func faultMaskStreamRestart() bool { return ActiveFaults().MaskStreamRestart }

var carryTwo FaultSwitch[bool]

// SetCarryForTwo makes every later two-party schedule use the carry
// circuit instead of sign gates (on) or not (off), for every deal and
// expansion in the process, and returns the function that restores the
// previous choice: for benchmarks that compare the two protocols at N = 2.
func SetCarryForTwo(on bool) (restore func()) { return carryTwo.Set(on) }

func carryForTwo() bool { return carryTwo.Active() }

// Draw describes words of a random part just drawn from a party's PRG
// stream (before any fault changes them): in Expand, by that party; in
// the dealer, for that party's share.
type Draw struct {
	// Seed keys the stream: a bundle's seed, or a mask bundle's seed.
	Seed share.Seed
	// Offset is the position of the first word in the stream.
	Offset int
	// Req and Part name the material part (Req.Kind is 0 for a mask).
	Req  Request
	Part int
	// Weight names the weight of a mask's words ("" otherwise).
	Weight string
	// XOR is set for an XOR-shared part.
	XOR bool
}

// DrawHook sees (and may change in place) the words of a random part just
// drawn; it must be safe for concurrent use.
type DrawHook func(d Draw, words []uint64)

var drawHook FaultSwitch[DrawHook]

// SetDrawHook installs h (nil removes it) for every later deal and
// expansion in the process, and returns a function that restores the
// previous hook. A test perturbs one word of one stream with it (on the
// dealer's side and the party's alike, so the material stays consistent)
// to see which opened values that random word masks.
func SetDrawHook(h DrawHook) (restore func()) { return drawHook.Set(h) }

func tapDraw(seed share.Seed, off int, r *Request, part int, xor bool, words []uint64) {
	if h := drawHook.Active(); h != nil {
		h(Draw{Seed: seed, Offset: off, Req: *r, Part: part, XOR: xor}, words)
	}
}

func tapMaskDraw(seed share.Seed, off int, weight string, words []uint64) {
	if h := drawHook.Active(); h != nil {
		h(Draw{Seed: seed, Offset: off, Part: -1, Weight: weight}, words)
	}
}
