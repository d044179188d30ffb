package plan

import (
	"fmt"
	"slices"
)

// MatMul follows numpy (ONNX MatMul): A [..., m, k] times B [..., k, n]
// with the batch dimensions broadcast, a 1-D A being a row [1, k] and a
// 1-D B a column [k, 1] whose added dimension is dropped from the result.
// Either operand may be a weight or an activation. The secure engine
// computes a node as one product of the dealer's kind (a matrix triple),
// after local moves of the shares; MatMulGeometry says which.

// MatMulMode is how a MatMul node maps onto one matrix product.
type MatMulMode int

const (
	// MatMulRows: B has rank <= 2; A's leading dimensions become rows:
	// X = A as [rows, k], Y = B as [k, n]. Every x·W and W·x with a 1-D
	// or 2-D x, and a left weight of any rank times a 1-D or 2-D x.
	MatMulRows MatMulMode = iota
	// MatMulLeft: A has rank <= 2 and B rank >= 3 (a 2-D left operand
	// times a batch of matrices): X = A [m, k], Y = B moved to
	// [k, batch·n] (B[b, i, j] at [i, b·n + j]); the product [m, batch·n]
	// is moved back to [batch, m, n].
	MatMulLeft
	// MatMulBatched: both have rank >= 3: both are broadcast to the
	// common batch and the product is batched: X [b, m, k], Y [b, k, n].
	MatMulBatched
)

// MatMulGeometry is the geometry of a MatMul node on operands of shapes a
// and b: the output shape, the shapes X and Y of the dealer's product
// (rank 2, or rank 3 for a batched product), and which operand enters the
// product exactly as it is stored (only reshaped), so that a weight there
// may be replaced by its long-term mask (dealer weight masks).
type MatMulGeometry struct {
	Mode MatMulMode
	// Out is the node's output shape (before any bias, which does not
	// change it).
	Out []int
	// X and Y are the product's operand shapes.
	X, Y []int
	// Batch is the broadcast batch shape (MatMulLeft, MatMulBatched).
	Batch []int
	// M, K, N are the matrix dimensions after 1-D promotion.
	M, K, N int
	// AAsIs and BAsIs report whether A (B) enters the product with its own
	// data in its own order (reshaped at most).
	AAsIs, BAsIs bool
}

// MatMulGeometryOf returns the geometry of a MatMul of shapes a and b.
func MatMulGeometryOf(a, b []int) (MatMulGeometry, error) {
	var g MatMulGeometry
	if len(a) < 1 || len(b) < 1 {
		return g, fmt.Errorf("operand shapes %v and %v: want rank >= 1", a, b)
	}
	pa, pb := slices.Clone(a), slices.Clone(b)
	if len(a) == 1 {
		pa = []int{1, a[0]}
	}
	if len(b) == 1 {
		pb = []int{b[0], 1}
	}
	g.M, g.K = pa[len(pa)-2], pa[len(pa)-1]
	g.N = pb[len(pb)-1]
	if pb[len(pb)-2] != g.K {
		return g, fmt.Errorf("operand shapes %v and %v: inner dimensions differ (%d and %d)", a, b, g.K, pb[len(pb)-2])
	}
	batch, err := Broadcast(pa[:len(pa)-2], pb[:len(pb)-2])
	if err != nil {
		return g, fmt.Errorf("operand shapes %v and %v: batch dimensions do not broadcast", a, b)
	}
	g.Batch = batch
	out := append([]int{}, batch...)
	if len(a) > 1 {
		out = append(out, g.M)
	}
	if len(b) > 1 {
		out = append(out, g.N)
	}
	g.Out = out
	switch {
	case len(pb) == 2:
		g.Mode = MatMulRows
		g.X, g.Y = []int{sizeOf(pa[:len(pa)-1]), g.K}, []int{g.K, g.N}
		// A's batch is its rows: the output keeps A's leading dims
		g.Batch = pa[:len(pa)-2]
		g.AAsIs, g.BAsIs = true, true
	case len(pa) == 2:
		g.Mode = MatMulLeft
		g.X, g.Y = []int{g.M, g.K}, []int{g.K, sizeOf(batch) * g.N}
		g.AAsIs = true
	default:
		g.Mode = MatMulBatched
		nb := sizeOf(batch)
		g.X, g.Y = []int{nb, g.M, g.K}, []int{nb, g.K, g.N}
		g.AAsIs = slices.Equal(pa[:len(pa)-2], batch)
		g.BAsIs = slices.Equal(pb[:len(pb)-2], batch)
	}
	return g, nil
}

// LeftIndex is the index map of MatMulLeft that moves B [batch, k, n]
// (flattened batch) to [k, batch·n].
func (g MatMulGeometry) LeftIndex() []int {
	nb := sizeOf(g.Batch)
	idx := make([]int, nb*g.K*g.N)
	for i := range g.K {
		for b := range nb {
			for j := range g.N {
				idx[i*nb*g.N+b*g.N+j] = (b*g.K+i)*g.N + j
			}
		}
	}
	return idx
}

// LeftOutIndex is the index map of MatMulLeft that moves the product
// [m, batch·n] to [batch, m, n].
func (g MatMulGeometry) LeftOutIndex() []int {
	nb := sizeOf(g.Batch)
	idx := make([]int, nb*g.M*g.N)
	for b := range nb {
		for i := range g.M {
			for j := range g.N {
				idx[(b*g.M+i)*g.N+j] = i*nb*g.N + b*g.N + j
			}
		}
	}
	return idx
}

// matMulShape is MatMul's output shape, with an optional bias along the
// output's last dimension.
func matMulShape(ins [][]int) ([]int, error) {
	g, err := MatMulGeometryOf(ins[0], ins[1])
	if err != nil {
		return nil, err
	}
	if len(ins) == 3 {
		if len(g.Out) == 0 {
			return nil, fmt.Errorf("bias shape %v: the output is a scalar, it takes no bias", ins[2])
		}
		if n := g.Out[len(g.Out)-1]; !slices.Equal(ins[2], []int{n}) {
			return nil, fmt.Errorf("bias shape %v: want [%d], the output's last dimension", ins[2], n)
		}
	}
	return g.Out, nil
}
