package faults

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"google.golang.org/protobuf/proto"
)

// sharesPrefix is where a daemon's datastore keeps stored shares (node's
// store layout: <prefix>/<owner>/<hex model>/{meta,done,c/<n>}).
const sharesPrefix = "/node/shares"

// openDatastore opens the pebble datastore of a stopped daemon's repo.
func openDatastore(repo string) (*pebbleds.Datastore, error) {
	d, err := pebbleds.NewDatastore(filepath.Join(repo, "datastore"))
	if err != nil {
		return nil, fmt.Errorf("open datastore of %s: %w", repo, err)
	}
	return d, nil
}

// ShareKeys lists the stored-share keys of a stopped daemon's repo, sorted.
func ShareKeys(ctx context.Context, repo string) ([]string, error) {
	d, err := openDatastore(repo)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res, err := d.Query(ctx, query.Query{Prefix: sharesPrefix, KeysOnly: true})
	if err != nil {
		return nil, err
	}
	es, err := res.Rest()
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	sort.Strings(keys)
	return keys, nil
}

// ModelKeys keeps the keys of one model (by name) from ShareKeys' list.
func ModelKeys(keys []string, model string) []string {
	hexName := fmt.Sprintf("/%x/", model)
	var out []string
	for _, k := range keys {
		if strings.Contains(k+"/", hexName) {
			out = append(out, k)
		}
	}
	return out
}

// CorruptShare flips one byte in the middle of the first stored share
// chunk of model in a stopped daemon's repo and returns the chunk's key.
func CorruptShare(ctx context.Context, repo, model string) (string, error) {
	keys, err := ShareKeys(ctx, repo)
	if err != nil {
		return "", err
	}
	var chunk string
	for _, k := range ModelKeys(keys, model) {
		if strings.Contains(k, "/c/") {
			chunk = k
			break
		}
	}
	if chunk == "" {
		return "", fmt.Errorf("no share chunk of %q in %s (keys %v)", model, repo, keys)
	}
	d, err := openDatastore(repo)
	if err != nil {
		return "", err
	}
	defer d.Close()
	v, err := d.Get(ctx, ds.NewKey(chunk))
	if err != nil {
		return "", err
	}
	v[len(v)/2] ^= 0x5a
	if err := d.Put(ctx, ds.NewKey(chunk), v); err != nil {
		return "", err
	}
	return chunk, d.Sync(ctx, ds.NewKey(sharesPrefix))
}

// DatastoreFiles lists the files of a repo's datastore whose names end in
// suffix (".sst", ".log", "MANIFEST-..." by prefix when suffix is empty).
func DatastoreFiles(repo, match string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(repo, "datastore"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), match) || strings.HasPrefix(de.Name(), match) {
			out = append(out, filepath.Join(repo, "datastore", de.Name()))
		}
	}
	return out, nil
}

// FindInWAL finds the first occurrence of needle in the write-ahead logs
// (*.log) of a stopped daemon's datastore, newest log first, and returns
// the file and the offset.
func FindInWAL(repo, needle string) (string, int64, error) {
	logs, err := DatastoreFiles(repo, ".log")
	if err != nil {
		return "", 0, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(logs)))
	for _, fn := range logs {
		b, err := os.ReadFile(fn)
		if err != nil {
			return "", 0, err
		}
		if i := bytes.Index(b, []byte(needle)); i >= 0 {
			return fn, int64(i), nil
		}
	}
	return "", 0, fmt.Errorf("%q in none of the write-ahead logs %v", needle, logs)
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
