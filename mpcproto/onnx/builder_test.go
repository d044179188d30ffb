package onnx

import (
	"encoding/binary"
	"math"
	"testing"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// gb builds small ONNX models by hand for tests.
type gb struct {
	opset int64
	g     *pb.GraphProto
}

// newGraph starts a model whose input "x" has the given dims: an int is a
// fixed dimension, a string a dim_param.
func newGraph(opset int64, dims ...any) *gb {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		switch v := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
		case string:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: v}})
		}
	}
	in := &pb.ValueInfoProto{Name: "x", Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: dtFloat, Shape: shape}}}}
	return &gb{opset: opset, g: &pb.GraphProto{Name: "test", Input: []*pb.ValueInfoProto{in},
		Output: []*pb.ValueInfoProto{{Name: "y"}}}}
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, v := range shape {
		d[i] = int64(v)
	}
	return d
}

// floatT is a float tensor with raw little-endian data.
func floatT(name string, shape []int, data ...float64) *pb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
	}
	return &pb.TensorProto{Name: name, Dims: dims64(shape), DataType: dtFloat, RawData: raw}
}

// intsT is a 1-D int64 tensor with inline data.
func intsT(name string, data ...int64) *pb.TensorProto {
	return &pb.TensorProto{Name: name, Dims: []int64{int64(len(data))}, DataType: dtInt64, Int64Data: data}
}

func (b *gb) init(t *pb.TensorProto) *gb {
	b.g.Initializer = append(b.g.Initializer, t)
	return b
}

func (b *gb) node(op, name string, ins, outs []string, attrs ...*pb.AttributeProto) *gb {
	b.g.Node = append(b.g.Node, &pb.NodeProto{OpType: op, Name: name, Input: ins, Output: outs, Attribute: attrs})
	return b
}

// constant adds a Constant node producing t.
func (b *gb) constant(out string, t *pb.TensorProto) *gb {
	return b.node("Constant", "const_"+out, nil, []string{out}, &pb.AttributeProto{Name: "value", Type: pb.AttributeProto_TENSOR, T: t})
}

func aInt(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INT, I: v}
}

func aInts(name string, v ...int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_INTS, Ints: v}
}

func aFloat(name string, v float32) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_FLOAT, F: v}
}

func aStr(name, v string) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_STRING, S: []byte(v)}
}

func (b *gb) bytes(t testing.TB) []byte {
	t.Helper()
	m := &pb.ModelProto{IrVersion: 8, OpsetImport: []*pb.OperatorSetIdProto{{Domain: "", Version: b.opset}}, Graph: b.g}
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
