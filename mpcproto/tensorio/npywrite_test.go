package tensorio

import (
	"slices"
	"testing"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// TestEncodeNPY checks that ParseNPY reads back what EncodeNPY writes, for
// several ranks, and that the data starts on a 64-byte boundary.
func TestEncodeNPY(t *testing.T) {
	for _, shape := range [][]int{{2}, {3, 4}, {1, 3, 5, 5}} {
		x := tensor.New[float64](shape...)
		for i := range x.Data {
			x.Data[i] = float64(i)*0.5 - 3
		}
		b := EncodeNPY(x)
		if (len(b)-8*len(x.Data))%64 != 0 {
			t.Fatalf("%v: header of %d bytes, not a multiple of 64", shape, len(b)-8*len(x.Data))
		}
		y, err := ParseNPY(b)
		if err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		if !slices.Equal(y.Shape, x.Shape) || !slices.Equal(y.Data, x.Data) {
			t.Fatalf("%v: read back %v %v", shape, y.Shape, y.Data)
		}
	}
}
