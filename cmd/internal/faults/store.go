package faults

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/node"
)

// Stored reads what the datastore of a stopped daemon's repo holds of
// model (node.InspectRepo; Keys is 0 when it holds no key of the model)
// and the number of keys of every model.
func Stored(repo, model string) (node.StoredShares, int, error) {
	stored, err := node.InspectRepo(repo)
	if err != nil {
		return node.StoredShares{}, 0, err
	}
	var found node.StoredShares
	keys := 0
	for _, s := range stored {
		keys += s.Keys
		if s.Model == model {
			found = s
		}
	}
	return found, keys, nil
}

// TruncateTables truncates every table file (.sst) of a stopped daemon's
// datastore to half its size, which the datastore then refuses to open,
// and returns how many there were.
func TruncateTables(repo string) (int, error) {
	ssts, err := filepath.Glob(filepath.Join(repo, node.DatastoreDir, "*.sst"))
	if err != nil {
		return 0, err
	}
	for _, fn := range ssts {
		st, err := os.Stat(fn)
		if err != nil {
			return 0, err
		}
		if err := os.Truncate(fn, st.Size()/2); err != nil {
			return 0, err
		}
	}
	return len(ssts), nil
}

// MatMulONNX returns an ONNX model y = x·W with x [1, in] and W [in, out]
// filled with small deterministic values: a model whose shares are large
// (8·in·out bytes per holder), to have an upload in flight.
func MatMulONNX(in, out int) ([]byte, error) {
	raw := make([]byte, 4*in*out)
	for i := range in * out {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i%7)/8))
	}
	dims := func(d ...int) *pb.TensorShapeProto {
		s := &pb.TensorShapeProto{}
		for _, v := range d {
			s.Dim = append(s.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
		}
		return s
	}
	tensorType := func(d ...int) *pb.TypeProto {
		return &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{ElemType: int32(pb.TensorProto_FLOAT), Shape: dims(d...)}}}
	}
	g := &pb.GraphProto{
		Name:        "matmul",
		Input:       []*pb.ValueInfoProto{{Name: "x", Type: tensorType(1, in)}},
		Output:      []*pb.ValueInfoProto{{Name: "y", Type: tensorType(1, out)}},
		Initializer: []*pb.TensorProto{{Name: "W", Dims: []int64{int64(in), int64(out)}, DataType: int32(pb.TensorProto_FLOAT), RawData: raw}},
		Node:        []*pb.NodeProto{{OpType: "MatMul", Name: "mm", Input: []string{"x", "W"}, Output: []string{"y"}}},
	}
	m := &pb.ModelProto{IrVersion: 8, OpsetImport: []*pb.OperatorSetIdProto{{Domain: "", Version: 13}}, Graph: g}
	return proto.Marshal(m)
}
