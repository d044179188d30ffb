package tensor

// The naive references the fast kernels are checked against: the original
// i-k-j product and a direct 7-loop convolution, generic over the element type.

func naiveMatMulInto[T Number](dst, a, b []T, m, k, n int) {
	if m*k*n == 0 {
		return // (the original panicked here: callers never pass empty products)
	}
	// the original MatMulInto, verbatim
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

func naiveConvT[T Number](x, w *Dense[T], win Window, group int) *Dense[T] {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	oh, ow, _ := win.OutSize(h, wd)
	cg, mg := c/group, m/group
	out := New[T](n, m, oh, ow)
	for b := range n {
		for o := range m {
			g := o / mg
			for y := range oh {
				for xx := range ow {
					var s T
					for ci := range cg {
						for i := range kh {
							for j := range kw {
								iy := y*win.Strides[0] - win.Pads[0] + i*win.Dilations[0]
								ix := xx*win.Strides[1] - win.Pads[1] + j*win.Dilations[1]
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								s += x.Data[((b*c+g*cg+ci)*h+iy)*wd+ix] * w.Data[((o*cg+ci)*kh+i)*kw+j]
							}
						}
					}
					out.Data[((b*m+o)*oh+y)*ow+xx] = s
				}
			}
		}
	}
	return out
}
