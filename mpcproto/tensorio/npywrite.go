package tensorio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// EncodeNPY writes x as a NumPy .npy file (format version 1.0) of
// little-endian float64 values in C order, which ParseNPY and numpy.load
// read back.
func EncodeNPY(x *tensor.Dense[float64]) []byte {
	dims := make([]string, len(x.Shape))
	for i, d := range x.Shape {
		dims[i] = fmt.Sprint(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }", shape)
	// The data starts at a multiple of 64 bytes; the header ends in '\n'.
	header += strings.Repeat(" ", (64-(10+len(header)+1)%64)%64) + "\n"
	var buf bytes.Buffer
	buf.Grow(10 + len(header) + 8*len(x.Data))
	buf.Write(npyMagic)
	buf.Write([]byte{1, 0})
	_ = binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	var w [8]byte
	for _, v := range x.Data {
		binary.LittleEndian.PutUint64(w[:], math.Float64bits(v))
		buf.Write(w[:])
	}
	return buf.Bytes()
}
