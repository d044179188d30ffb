package tensor

import "fmt"

// The products below are generic so that one implementation serves float64
// values and uint64 ring elements (whose overflow wraps modulo 2^64, which
// is exactly the ring arithmetic the secure engine needs). For []uint64 they
// run the blocked, multi-core kernels of gemm.go and conv.go (exactly the
// same results); other element types keep the naive loops below.

// MatMulInto adds a·b to dst, where a is m x k, b is k x n and dst is m x n,
// all row-major flat slices. It panics on mismatched lengths (callers check
// shapes; use MatMul for a checked version). On []uint64 it is
// MatMulU64Into.
func MatMulInto[T Number](dst, a, b []T, m, k, n int) {
	if d, ok := any(dst).([]uint64); ok {
		MatMulU64Into(d, any(a).([]uint64), any(b).([]uint64), m, k, n)
		return
	}
	_ = dst[m*n-1]
	_ = a[m*k-1]
	_ = b[k*n-1]
	for i := range m {
		out := dst[i*n : (i+1)*n]
		row := a[i*k : (i+1)*k]
		for p, aip := range row {
			if aip == 0 {
				continue
			}
			br := b[p*n : (p+1)*n]
			for j, v := range br {
				out[j] += aip * v
			}
		}
	}
}

// MatMul is the product of a [m, k] and b [k, n].
func MatMul[T Number](a, b *Dense[T]) (*Dense[T], error) {
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[1] != b.Shape[0] {
		return nil, fmt.Errorf("tensor: matmul of shapes %v and %v", a.Shape, b.Shape)
	}
	m, k, n := a.Shape[0], a.Shape[1], b.Shape[1]
	out := New[T](m, n)
	if m*k*n > 0 {
		MatMulInto(out.Data, a.Data, b.Data, m, k, n)
	}
	return out, nil
}

// ConvShape is the output shape of a convolution of x [n, c, h, w] by
// w [m, c/group, kH, kW]; it checks that the shapes agree.
func ConvShape(x, w []int, win Window, group int) ([]int, error) {
	if len(x) != 4 || len(w) != 4 {
		return nil, fmt.Errorf("tensor: conv needs 4-D input and weight, got %v and %v", x, w)
	}
	if group < 1 {
		return nil, fmt.Errorf("tensor: conv group %d must be positive", group)
	}
	if x[1]%group != 0 || w[0]%group != 0 || x[1]/group != w[1] {
		return nil, fmt.Errorf("tensor: conv input %v and weight %v disagree with group %d", x, w, group)
	}
	if win.Kernel != [2]int{w[2], w[3]} {
		return nil, fmt.Errorf("tensor: conv kernel %v differs from weight %v", win.Kernel, w)
	}
	oh, ow, err := win.OutSize(x[2], x[3])
	if err != nil {
		return nil, err
	}
	return []int{x[0], w[0], oh, ow}, nil
}

// Conv2D convolves x [n, c, h, w] with w [m, c/group, kH, kW] (no bias) by
// im2col and a matrix product per group; the result is [n, m, oh, ow]. On
// uint64 it runs the kernels of conv.go (transposed im2col into reused
// buffers, 1x1 convolutions as plain products, a direct depthwise kernel);
// other element types keep the generic path below.
func Conv2D[T Number](x, w *Dense[T], win Window, group int) (*Dense[T], error) {
	if xu, ok := any(x).(*Dense[uint64]); ok {
		out, err := conv2DU64(xu, any(w).(*Dense[uint64]), win, group)
		return any(out).(*Dense[T]), err
	}
	shape, err := ConvShape(x.Shape, w.Shape, win, group)
	if err != nil {
		return nil, err
	}
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, oh, ow := shape[1], shape[2], shape[3]
	cg, mg := c/group, m/group
	kk := w.Shape[1] * w.Shape[2] * w.Shape[3]
	out := New[T](shape...)
	sub := New[T](n, cg, h, wd)
	plane := h * wd
	_, _, idx, err := Im2ColIndex(sub.Shape, win)
	if err != nil {
		return nil, err
	}
	rows := n * oh * ow
	for g := range group {
		for b := range n {
			src := x.Data[(b*c+g*cg)*plane : (b*c+(g+1)*cg)*plane]
			copy(sub.Data[b*cg*plane:(b+1)*cg*plane], src)
		}
		cols, err := Gather(sub, []int{rows, kk}, idx, 0)
		if err != nil {
			return nil, err
		}
		wg := &Dense[T]{Shape: []int{mg, kk}, Data: w.Data[g*mg*kk : (g+1)*mg*kk]}
		wt, err := Transpose2D(wg)
		if err != nil {
			return nil, err
		}
		prod := make([]T, rows*mg)
		MatMulInto(prod, cols.Data, wt.Data, rows, kk, mg)
		for r := range rows {
			b, pix := r/(oh*ow), r%(oh*ow)
			for j := range mg {
				out.Data[(b*m+g*mg+j)*oh*ow+pix] = prod[r*mg+j]
			}
		}
	}
	return out, nil
}

// MulBroadcast is the elementwise product of a and b under numpy broadcasting.
func MulBroadcast[T Number](a, b *Dense[T]) (*Dense[T], error) {
	shape, err := BroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	ea, err := Broadcast(a, shape)
	if err != nil {
		return nil, err
	}
	eb, err := Broadcast(b, shape)
	if err != nil {
		return nil, err
	}
	out := New[T](shape...)
	for i := range out.Data {
		out.Data[i] = ea.Data[i] * eb.Data[i]
	}
	return out, nil
}
