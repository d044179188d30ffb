package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
)

// ONNX TensorProto data types.
const (
	dtFloat   = 1
	dtUint8   = 2
	dtInt8    = 3
	dtUint16  = 4
	dtInt16   = 5
	dtInt32   = 6
	dtInt64   = 7
	dtBool    = 9
	dtFloat16 = 10
	dtDouble  = 11
	dtUint32  = 12
	dtUint64  = 13
)

// readTensor decodes a TensorProto (float, double, int32/64, bool and the
// small integer types, inline or raw little-endian data) into a ctensor.
func readTensor(tp *pb.TensorProto) (*ctensor, error) {
	if tp == nil {
		return nil, errors.New("tensor is missing")
	}
	if tp.GetDataLocation() == pb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, errors.New("tensor data stored outside the model file is not supported (save the model with its weights inside)")
	}
	if tp.GetSegment() != nil {
		return nil, errors.New("segmented tensors are not supported")
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("dims %v: dimension %d out of range", tp.GetDims(), d)
		}
		shape[i] = int(d)
	}
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	raw := tp.GetRawData()
	dt := tp.GetDataType()
	width := map[int32]int{dtFloat: 4, dtDouble: 8, dtInt64: 8, dtInt32: 4, dtInt16: 2, dtUint16: 2,
		dtInt8: 1, dtUint8: 1, dtBool: 1, dtUint32: 4, dtUint64: 8}[dt]
	if width == 0 {
		return nil, fmt.Errorf("data type %s is not supported", pb.TensorProto_DataType(dt))
	}
	// check the data's length before allocating for the declared shape
	if err := checkLength(tp, shape, n, width); err != nil {
		return nil, err
	}
	c := &ctensor{shape: shape, data: make([]float64, n), isInt: dt != dtFloat && dt != dtDouble}
	if len(raw) > 0 {
		decodeRaw(c.data, raw, dt, width)
	} else {
		decodeValues(c.data, tp)
	}
	return c, nil
}

// checkLength checks that tp holds the n values of its shape, as raw data
// of width bytes a value or in the typed field of its data type.
func checkLength(tp *pb.TensorProto, shape []int, n, width int) error {
	raw := tp.GetRawData()
	dt := tp.GetDataType()
	var got int
	switch {
	case len(raw) > 0:
		got = len(raw) / width
		if len(raw) != n*width {
			return fmt.Errorf("shape %v of %s needs %d bytes of raw data, got %d", shape, pb.TensorProto_DataType(dt), n*width, len(raw))
		}
	case dt == dtFloat:
		got = len(tp.GetFloatData())
	case dt == dtDouble:
		got = len(tp.GetDoubleData())
	case dt == dtInt64:
		got = len(tp.GetInt64Data())
	case dt == dtUint32 || dt == dtUint64:
		got = len(tp.GetUint64Data())
	default: // int32, int16, int8, uint16, uint8, bool are stored in int32_data
		got = len(tp.GetInt32Data())
	}
	if got != n {
		return fmt.Errorf("shape %v of %s holds %d values, got %d", shape, pb.TensorProto_DataType(dt), n, got)
	}
	return nil
}

// decodeRaw decodes little-endian raw data of type dt, width bytes a value,
// into dst.
func decodeRaw(dst []float64, raw []byte, dt int32, width int) {
	for i := range dst {
		b := raw[i*width : (i+1)*width]
		var v float64
		switch dt {
		case dtFloat:
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case dtDouble:
			v = math.Float64frombits(binary.LittleEndian.Uint64(b))
		case dtInt64:
			v = float64(int64(binary.LittleEndian.Uint64(b)))
		case dtUint64:
			v = float64(binary.LittleEndian.Uint64(b))
		case dtInt32:
			v = float64(int32(binary.LittleEndian.Uint32(b)))
		case dtUint32:
			v = float64(binary.LittleEndian.Uint32(b))
		case dtInt16:
			v = float64(int16(binary.LittleEndian.Uint16(b)))
		case dtUint16:
			v = float64(binary.LittleEndian.Uint16(b))
		case dtInt8:
			v = float64(int8(b[0]))
		case dtUint8:
			v = float64(b[0])
		case dtBool:
			if b[0] != 0 {
				v = 1
			}
		}
		dst[i] = v
	}
}

// decodeValues copies tp's typed data field into dst.
func decodeValues(dst []float64, tp *pb.TensorProto) {
	switch tp.GetDataType() {
	case dtFloat:
		for i, v := range tp.GetFloatData() {
			dst[i] = float64(v)
		}
	case dtDouble:
		copy(dst, tp.GetDoubleData())
	case dtInt64:
		for i, v := range tp.GetInt64Data() {
			dst[i] = float64(v)
		}
	case dtUint32, dtUint64:
		for i, v := range tp.GetUint64Data() {
			dst[i] = float64(v)
		}
	default:
		for i, v := range tp.GetInt32Data() {
			dst[i] = float64(v)
		}
	}
}

// attrs indexes a node's attributes by name.
type attrs map[string]*pb.AttributeProto

func nodeAttrs(n *pb.NodeProto) (attrs, error) {
	m := attrs{}
	for _, a := range n.GetAttribute() {
		if a.GetRefAttrName() != "" {
			return nil, fmt.Errorf("attribute %s refers to a function attribute, which is not supported", a.GetName())
		}
		m[a.GetName()] = a
	}
	return m, nil
}

// lookup returns attribute name and whether it is present, or an error
// naming kind when it is present but not of type t.
func (m attrs) lookup(name string, t pb.AttributeProto_AttributeType, kind string) (*pb.AttributeProto, bool, error) {
	a, ok := m[name]
	if ok && a.GetType() != t {
		return nil, false, fmt.Errorf("attribute %s must be %s", name, kind)
	}
	return a, ok, nil
}

// attrValue returns attribute name of type t read by get, or def when it is
// absent.
func attrValue[T any](m attrs, name string, t pb.AttributeProto_AttributeType, kind string, def T, get func(*pb.AttributeProto) T) (T, error) {
	a, ok, err := m.lookup(name, t, kind)
	if !ok {
		var zero T
		if err == nil {
			zero = def
		}
		return zero, err
	}
	return get(a), nil
}

func (m attrs) int(name string, def int) (int, error) {
	v, err := attrValue(m, name, pb.AttributeProto_INT, "an int", int64(def), (*pb.AttributeProto).GetI)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, fmt.Errorf("attribute %s = %d out of range", name, v)
	}
	return int(v), nil
}

func (m attrs) float(name string, def float64) (float64, error) {
	return attrValue(m, name, pb.AttributeProto_FLOAT, "a float", def, func(a *pb.AttributeProto) float64 { return float64(a.GetF()) })
}

func (m attrs) ints(name string) ([]int, bool, error) {
	a, ok, err := m.lookup(name, pb.AttributeProto_INTS, "a list of ints")
	if !ok {
		return nil, false, err
	}
	if len(a.GetInts()) > 64 {
		return nil, false, fmt.Errorf("attribute %s has %d values", name, len(a.GetInts()))
	}
	out := make([]int, len(a.GetInts()))
	for i, v := range a.GetInts() {
		if v > math.MaxInt32*4 {
			v = math.MaxInt32 * 4 // Slice's "to the end"
		}
		if v < math.MinInt32*4 {
			v = math.MinInt32 * 4
		}
		out[i] = int(v)
	}
	return out, true, nil
}

func (m attrs) str(name, def string) (string, error) {
	return attrValue(m, name, pb.AttributeProto_STRING, "a string", def, func(a *pb.AttributeProto) string { return string(a.GetS()) })
}

// constantValue decodes a Constant node's value from whichever attribute
// holds it.
func constantValue(m attrs) (*ctensor, error) {
	for name, a := range m {
		switch name {
		case "value":
			return readTensor(a.GetT())
		case "value_float":
			return &ctensor{shape: []int{}, data: []float64{float64(a.GetF())}}, nil
		case "value_floats":
			c := &ctensor{shape: []int{len(a.GetFloats())}}
			for _, v := range a.GetFloats() {
				c.data = append(c.data, float64(v))
			}
			return c, nil
		case "value_int":
			return &ctensor{shape: []int{}, data: []float64{float64(a.GetI())}, isInt: true}, nil
		case "value_ints":
			c := &ctensor{shape: []int{len(a.GetInts())}, isInt: true}
			for _, v := range a.GetInts() {
				c.data = append(c.data, float64(v))
			}
			return c, nil
		case "sparse_value", "value_string", "value_strings":
			return nil, fmt.Errorf("constant attribute %s is not supported", name)
		}
	}
	return nil, errors.New("constant has no value")
}
