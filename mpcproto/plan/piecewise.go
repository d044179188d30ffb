package plan

import (
	"fmt"
	"math"
	"slices"
)

// The elementwise ops evaluated by comparisons (Clip, LeakyRelu, PRelu,
// HardSigmoid, HardSwish, Sigmoid, SiLU) are piecewise polynomials of
// degree <= 2: public thresholds t_0 < ... < t_{J-1} cut the line into
// J+1 pieces, and the secure engine compares the input with every
// threshold at once (one vectorised sign test, J comparisons per
// element), evaluates each piece's polynomial and keeps the piece the
// input falls in (see engine/piecewise.go). Clip, LeakyRelu, PRelu,
// HardSigmoid and HardSwish are exactly piecewise polynomials (up to
// fixed point); Sigmoid and SiLU are approximated (SigmoidBound,
// SiLUBound): a polynomial of degree 2 per piece, interpolated at the
// Chebyshev nodes of the piece, and saturation (0 and 1, 0 and x) outside
// the pieces.

// Poly is a polynomial piece c0 + c1·u + c2·u² of u = x − M, M a multiple
// of 1/2 (so that u² = x² − 2M·x + M² is exact on fixed-point shares).
type Poly struct {
	M float64
	C [3]float64
	// Slope, when set, replaces C[1] element by element (broadcast
	// against the input): PRelu's per-channel slopes.
	Slope *Const
}

// Piecewise is a function of one value cut at public thresholds.
type Piecewise struct {
	// Thresholds are ascending; piece 0 is below Thresholds[0], piece i
	// covers [Thresholds[i-1], Thresholds[i]), the last piece is at or
	// above the last threshold.
	Thresholds []float64
	// Pieces holds len(Thresholds)+1 pieces.
	Pieces []Poly
	// Pre, when set, makes the function apply to w = Pre[0]·x + Pre[1]
	// (HardSigmoid): the engine compares w before truncating it, as it
	// does a product's (its pieces are then exact in w).
	Pre *[2]float64
}

// exactCoef reports whether c is an integer the engine multiplies shares
// by without truncation.
func exactCoef(c float64) bool { return c == math.Trunc(c) && math.Abs(c) < 1<<31 }

// Exact reports whether the piece needs no truncation: degree <= 1 with
// an integer slope (every slope, for per-element slopes).
func (p Poly) Exact() bool {
	if p.C[2] != 0 {
		return false
	}
	if p.Slope != nil {
		for _, s := range p.Slope.Data {
			if !exactCoef(s) {
				return false
			}
		}
		return true
	}
	return exactCoef(p.C[1])
}

// Eval is the piece's value at x, with slope s in place of C[1] when the
// piece has per-element slopes.
func (p Poly) Eval(x, s float64) float64 {
	u := x - p.M
	c1 := p.C[1]
	if p.Slope != nil {
		c1 = s
	}
	return p.C[0] + c1*u + p.C[2]*u*u
}

// Base is the index of the piece the engine evaluates for every input
// (the others are selected as differences from it): the first exact
// piece, -1 when none.
func (pw *Piecewise) Base() int {
	for i, p := range pw.Pieces {
		if p.Exact() {
			return i
		}
	}
	return -1
}

// Square reports whether some piece has degree 2 (the engine computes x²).
func (pw *Piecewise) Square() bool {
	for _, p := range pw.Pieces {
		if p.C[2] != 0 {
			return true
		}
	}
	return false
}

// Truncated is the number of pieces that end with a truncation.
func (pw *Piecewise) Truncated() int {
	n := 0
	for _, p := range pw.Pieces {
		if !p.Exact() {
			n++
		}
	}
	return n
}

// Fusable reports whether the function can take a product before its
// truncation (the comparisons on the product, the pieces on its
// truncation): every piece exact and the function continuous at every
// threshold, so that a truncation landing on a threshold does not matter.
func (pw *Piecewise) Fusable() bool {
	if pw.Pre != nil || pw.Truncated() > 0 {
		return false
	}
	for i, t := range pw.Thresholds {
		for _, s := range pw.slopes() {
			if math.Abs(pw.Pieces[i].Eval(t, s)-pw.Pieces[i+1].Eval(t, s)) > 1e-9 {
				return false
			}
		}
	}
	return true
}

// slopes lists the distinct per-element slopes of the pieces (one 0 when
// none has any), for checks over every element.
func (pw *Piecewise) slopes() []float64 {
	var out []float64
	for _, p := range pw.Pieces {
		if p.Slope != nil {
			out = append(out, p.Slope.Data...)
		}
	}
	if out == nil {
		out = []float64{0}
	}
	return out
}

// Eval evaluates the function (the approximation, for Sigmoid and SiLU)
// at x in float64, with per-element slope s.
func (pw *Piecewise) Eval(x, s float64) float64 {
	if pw.Pre != nil {
		x = pw.Pre[0]*x + pw.Pre[1]
	}
	i, _ := slices.BinarySearch(pw.Thresholds, x)
	if i < len(pw.Thresholds) && pw.Thresholds[i] == x {
		i++
	}
	return pw.Pieces[i].Eval(x, s)
}

// check validates a piecewise function built from a node's attrs.
func (pw *Piecewise) check() error {
	if len(pw.Thresholds) == 0 || len(pw.Pieces) != len(pw.Thresholds)+1 {
		return fmt.Errorf("%d thresholds and %d pieces", len(pw.Thresholds), len(pw.Pieces))
	}
	for i, t := range pw.Thresholds {
		if math.IsNaN(t) || math.IsInf(t, 0) || (i > 0 && t <= pw.Thresholds[i-1]) {
			return fmt.Errorf("thresholds %v are not finite and ascending", pw.Thresholds)
		}
	}
	if pw.Base() < 0 {
		return fmt.Errorf("no exact piece")
	}
	for _, p := range pw.Pieces {
		if p.M*2 != math.Trunc(p.M*2) {
			return fmt.Errorf("piece center %v is not a multiple of 1/2", p.M)
		}
	}
	if pw.Pre != nil && pw.Truncated() > 0 {
		return fmt.Errorf("a function of an affine input must have exact pieces")
	}
	return nil
}

// PiecewiseOf returns the piecewise function of a node of a piecewise op
// (Clip, LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid, SiLU), or
// false for another op. Call it on a validated node.
func PiecewiseOf(n *Node) (*Piecewise, bool) {
	a := &n.Attrs
	x := Poly{C: [3]float64{0, 1, 0}} // the input itself
	cst := func(v float64) Poly { return Poly{C: [3]float64{v, 0, 0}} }
	switch n.Op {
	case Clip:
		switch {
		case a.Min != nil && a.Max != nil:
			return &Piecewise{Thresholds: []float64{*a.Min, *a.Max}, Pieces: []Poly{cst(*a.Min), x, cst(*a.Max)}}, true
		case a.Min != nil:
			return &Piecewise{Thresholds: []float64{*a.Min}, Pieces: []Poly{cst(*a.Min), x}}, true
		case a.Max != nil:
			return &Piecewise{Thresholds: []float64{*a.Max}, Pieces: []Poly{x, cst(*a.Max)}}, true
		}
	case LeakyRelu:
		return &Piecewise{Thresholds: []float64{0}, Pieces: []Poly{{C: [3]float64{0, a.Alpha, 0}}, x}}, true
	case PRelu:
		return &Piecewise{Thresholds: []float64{0}, Pieces: []Poly{{C: [3]float64{0, 0, 0}, Slope: a.Const}, x}}, true
	case HardSigmoid:
		return &Piecewise{Thresholds: []float64{0, 1}, Pieces: []Poly{cst(0), x, cst(1)}, Pre: &[2]float64{a.Alpha, a.Beta}}, true
	case HardSwish:
		// x·clip(x/6 + 1/2, 0, 1): 0, x²/6 + x/2, x
		return &Piecewise{Thresholds: []float64{-3, 3}, Pieces: []Poly{cst(0), {C: [3]float64{0, 0.5, 1.0 / 6}}, x}}, true
	case Sigmoid:
		return sigmoidPieces, true
	case SiLU:
		return siluPieces, true
	}
	return nil, false
}

// The approximations of Sigmoid and SiLU. The knots (multiples of 1/4)
// are placed by a greedy search so that each piece's interpolation error
// stays below a target, and are symmetric about 0 (σ(−x) = 1 − σ(x) and
// SiLU(−x) = SiLU(x) − x make the error profile symmetric).
var (
	sigmoidKnots = []float64{-9, -5.5, -4, -2.75, -1.75, -0.75, 0, 0.75, 1.75, 2.75, 4, 5.5, 9}
	siluKnots    = []float64{-16, -8.75, -6.25, -4.5, -2.75, -2, -1.5, -1, -0.5, 0.5, 1, 1.5, 2, 2.75, 4.5, 6.25, 8.75, 16}

	sigmoidPieces = approximate(sigmoid, sigmoidKnots, 0, 1, false)
	siluPieces    = approximate(silu, siluKnots, 0, 0, true)
)

// SigmoidBound bounds |Sigmoid's approximation − σ(x)| for every x: at
// most 2.9e-4 from the 12 pieces on [−9, 9] and 1 − σ(9) = 1.2e-4 from the
// saturation outside, in real arithmetic; the secure engine adds at most
// 1e-4 of fixed-point error (the bound covers both; tests check it on a
// dense grid, in float64 and securely).
const SigmoidBound = 5e-4

// SiLUBound bounds |SiLU's approximation − x·σ(x)| for every x: at most
// 3.2e-4 from the 17 pieces on [−16, 16], 16·σ(−16) = 1.8e-6 from the
// saturation (0 below, x above), plus fixed point.
const SiLUBound = 5e-4

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func silu(x float64) float64    { return x * sigmoid(x) }

// approximate interpolates f by a polynomial of degree 2 on every
// interval between the knots, at the interval's three Chebyshev nodes, in
// u = x − M with M the interval's center rounded to a multiple of 1/2;
// below the first knot the value is lo, at or above the last one hi (or x
// itself when hiIsX).
func approximate(f func(float64) float64, knots []float64, lo, hi float64, hiIsX bool) *Piecewise {
	pw := &Piecewise{Thresholds: slices.Clone(knots), Pieces: []Poly{{C: [3]float64{lo, 0, 0}}}}
	for i := 1; i < len(knots); i++ {
		a, b := knots[i-1], knots[i]
		m := math.Round(a+b) / 2
		var u, y [3]float64
		for k := range 3 {
			x := (a+b)/2 + (b-a)/2*math.Cos(float64(2*k+1)*math.Pi/6)
			u[k], y[k] = x-m, f(x)
		}
		// Newton's divided differences, then the monomial form in u
		d1 := (y[1] - y[0]) / (u[1] - u[0])
		d2 := ((y[2]-y[1])/(u[2]-u[1]) - d1) / (u[2] - u[0])
		c2 := d2
		c1 := d1 - d2*(u[0]+u[1])
		c0 := y[0] - d1*u[0] + d2*u[0]*u[1]
		pw.Pieces = append(pw.Pieces, Poly{M: m, C: [3]float64{c0, c1, c2}})
	}
	top := Poly{C: [3]float64{hi, 0, 0}}
	if hiIsX {
		top = Poly{C: [3]float64{0, 1, 0}}
	}
	pw.Pieces = append(pw.Pieces, top)
	return pw
}

// Approximated lists the ops whose secure evaluation approximates the
// function (the twin computes it exactly), with the bound of the error.
var Approximated = map[Op]float64{Sigmoid: SigmoidBound, SiLU: SiLUBound}

// evalPiecewiseExact is the twin of the piecewise ops: the functions
// themselves, written directly.
func evalPiecewiseExact(n *Node, x, out []float64, slope func(i int) float64) {
	a := &n.Attrs
	for i, v := range x {
		var y float64
		switch n.Op {
		case Clip:
			y = v
			if a.Min != nil {
				y = math.Max(y, *a.Min)
			}
			if a.Max != nil {
				y = math.Min(y, *a.Max)
			}
		case LeakyRelu, PRelu:
			y = v
			if v < 0 {
				s := a.Alpha
				if n.Op == PRelu {
					s = slope(i)
				}
				y = s * v
			}
		case HardSigmoid:
			y = math.Max(0, math.Min(1, a.Alpha*v+a.Beta))
		case HardSwish:
			y = v * math.Max(0, math.Min(1, v/6+0.5))
		case Sigmoid:
			y = sigmoid(v)
		case SiLU:
			y = silu(v)
		}
		out[i] = y
	}
}
