package node

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := &pb.InferRequest{Session: make([]byte, 16), Model: "m", Party: 2, Input: encodeWords("x", &tensor.Dense[uint64]{Shape: []int{2}, Data: []uint64{1, 1 << 63}})}
	if err := writeMsg(&buf, in); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(&buf, bytes.Repeat([]byte{7}, 3<<20)); err != nil {
		t.Fatal(err)
	}
	fr := newFrameReader(&buf)
	var out pb.InferRequest
	if err := fr.readMsg(&out, maxControlFrame); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("got %v", &out)
	}
	if _, err := fr.next(1 << 20); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := newFrameReader(bytes.NewReader(nil)).next(10); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
	if _, err := newFrameReader(bytes.NewReader([]byte{5, 1})).next(10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// FuzzReadMessages feeds arbitrary bytes to every wire message reader.
func FuzzReadMessages(f *testing.F) {
	seed := func(m proto.Message) []byte {
		var b bytes.Buffer
		_ = writeMsg(&b, m)
		return b.Bytes()
	}
	f.Add(seed(&pb.InferRequest{Session: make([]byte, 16), Model: "convnet", Holders: [][]byte{[]byte("x")}, Input: &pb.Tensor{Shape: []int64{2}, Data: make([]byte, 16)}}))
	f.Add(seed(&pb.UploadHeader{Model: "m", Mode: "mpc", TotalBytes: 10, Checksum: make([]byte, 32)}))
	f.Add(seed(&pb.DealerMessage{Body: &pb.DealerMessage_Bundle{Bundle: &pb.BundleDelivery{Bundle: []byte("GRDB")}}}))
	f.Add(seed(&pb.InferResult{Status: &pb.Status{Code: pb.Code_PEER_FAILED, Peer: []byte("x")}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs := []proto.Message{&pb.InferRequest{}, &pb.InferResult{}, &pb.UploadHeader{}, &pb.UploadChunk{},
			&pb.DealerMessage{}, &pb.MpcHello{}, &pb.PlainRequest{}, &pb.PlainResult{}, &pb.Status{}}
		for _, m := range msgs {
			if err := newFrameReader(bytes.NewReader(b)).readMsg(m, maxControlFrame); err != nil {
				continue
			}
			switch m := m.(type) {
			case *pb.InferRequest:
				_, _ = decodeWords(m.Input)
				_, _ = decodePeers(m.Holders)
			case *pb.InferResult:
				_ = errorFromStatus(m.Status)
				_, _ = decodeWords(m.Output)
			case *pb.UploadHeader:
				_, _ = checkUploadHeader(m, peer.ID("self"))
			case *pb.DealerMessage:
				if d := m.GetDeal(); d != nil {
					_, _ = checkDealRequest(d)
				}
			case *pb.PlainRequest:
				_, _ = decodeFloats(m.Input)
			case *pb.Status:
				_ = errorFromStatus(m)
			}
		}
	})
}

// FuzzDecodeWeightSet feeds arbitrary blobs to the store's decoder.
func FuzzDecodeWeightSet(f *testing.F) {
	blob, _ := encodeWeightSet(map[string]*tensor.Dense[uint64]{"W": {Shape: []int{2, 1}, Data: []uint64{1, 2}}})
	f.Add(blob)
	f.Add([]byte{0x0a, 0x05, 0x12, 0x02, 0x08, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWeightSet(b)
		if err != nil {
			return
		}
		for name, d := range w {
			if tensor.Size(d.Shape) != len(d.Data) {
				t.Fatalf("weight %q: shape %v with %d values", name, d.Shape, len(d.Data))
			}
		}
	})
}

func TestDecodeWords(t *testing.T) {
	tests := []struct {
		name string
		in   *pb.Tensor
		want string
	}{
		{"nil", nil, "missing"},
		{"negative dim", &pb.Tensor{Shape: []int64{-1}}, "dim 0"},
		{"short data", &pb.Tensor{Shape: []int64{2}, Data: make([]byte, 8)}, "needs 16 bytes"},
		{"huge", &pb.Tensor{Shape: []int64{1 << 20, 1 << 20}}, "over"},
		{"ok", &pb.Tensor{Shape: []int64{1, 2}, Data: make([]byte, 16)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeWords(tc.in)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFitInput(t *testing.T) {
	free := &plan.Plan{Input: plan.Value{Name: "x", Shape: []int{-1, 3}}}
	fixed := &plan.Plan{Input: plan.Value{Name: "x", Shape: []int{2}}}
	tests := []struct {
		name    string
		p       *plan.Plan
		shape   []int
		batch   int
		batched bool
		err     string
	}{
		{"fixed ok", fixed, []int{2}, 1, false, ""},
		{"fixed wrong", fixed, []int{3}, 0, false, "[3], the model expects [2]"},
		{"fixed batched refused", fixed, []int{1, 2}, 0, false, "expects [2]"},
		{"free single", free, []int{3}, 1, false, ""},
		{"free batch", free, []int{5, 3}, 5, true, ""},
		{"free wrong", free, []int{5, 4}, 0, false, "[5 4]"},
		{"free empty batch", free, []int{0, 3}, 0, false, "bad input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := tensor.New[float64](tc.shape...)
			in, err := fitInput(tc.p, x)
			got, batch, batched := in.X, in.Batch, in.Batched
			if tc.err != "" {
				if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrBadInput with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if batch != tc.batch || batched != tc.batched || got.Shape[0] != tc.batch && len(tc.p.Input.Shape) > 1 {
				t.Fatalf("batch %d batched %v shape %v", batch, batched, got.Shape)
			}
		})
	}
	if _, err := fitInput(fixed, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{1}}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("inconsistent tensor: %v", err)
	}
}

func TestBlame(t *testing.T) {
	h := []peer.ID{"h0", "h1", "h2", "h3"}
	broken := &PeerError{Peer: "h2", Role: "holder 2", Err: errors.New("connection lost")}
	names := func(p peer.ID) error { return &PeerError{Peer: "x", Err: &remoteBlame{peer: p, msg: "peer failed"}} }
	tests := []struct {
		name string
		errs []error
		want peer.ID
	}{
		{"broken stream wins", []error{names("h1"), nil, broken, errAborted}, "h2"},
		{"reporters are alive", []error{names("h1"), names("h2"), nil, names("h2")}, "h2"},
		{"majority", []error{names("h3"), names("h3"), names("h0"), nil}, "h3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pe *PeerError
			err := blame(tc.errs, h)
			if !errors.As(err, &pe) || pe.Peer != tc.want {
				t.Fatalf("blame = %v, want %s", err, tc.want)
			}
		})
	}
	if blame([]error{nil, errAborted}, h) != nil {
		t.Fatal("blame without errors")
	}
}

func TestStoreAtomicAndChecksum(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	s, err := openStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	sk, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := peer.IDFromPrivateKey(sk)
	w := map[string]*tensor.Dense[uint64]{"W": {Shape: []int{storeChunk/8 + 3}, Data: make([]uint64, storeChunk/8+3)}}
	w["W"].Data[5] = 42
	blob, err := encodeWeightSet(w)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	meta := shareMeta{Model: "m", Owner: owner.String(), Mode: "mpc", Version: 3, PlanHash: strings.Repeat("a", 64),
		Party: 1, Holders: []string{"a", "b"}, Size: len(blob), Checksum: hex.EncodeToString(sum[:])}
	if err := s.put(ctx, meta, blob, w); err != nil {
		t.Fatal(err)
	}
	// Reopen: the model is there and intact.
	s2, err := openStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := s2.get(owner, "m")
	if err != nil || sm.weights["W"].Data[5] != 42 || sm.meta.Chunks != 2 {
		t.Fatalf("reopened: %v %+v", err, sm)
	}
	// Corrupt one chunk: the model is refused as damaged, not served.
	key := versionPrefix(owner, "m", 3).ChildString("c").ChildString("00000001")
	v, err := d.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	v[0] ^= 1
	if err := d.Put(ctx, key, v); err != nil {
		t.Fatal(err)
	}
	s3, err := openStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.get(owner, "m"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("corrupted model: %v, want ErrDamaged", err)
	}
	if len(s3.damaged()) != 1 {
		t.Fatalf("damaged() = %v", s3.damaged())
	}
	// A model without its completion marker does not exist.
	if err := d.Delete(ctx, versionPrefix(owner, "m", 3).ChildString("done")); err != nil {
		t.Fatal(err)
	}
	s4, err := openStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s4.get(owner, "m"); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("model without marker: %v, want ErrUnknownModel", err)
	}
	// remove drops every key.
	if err := s.remove(ctx, owner, "m"); err != nil {
		t.Fatal(err)
	}
	s5, _ := openStore(ctx, d)
	if len(s5.list()) != 0 {
		t.Fatalf("after remove: %v", s5.list())
	}
}

func dsKey(k string) ds.Key { return ds.NewKey(k) }
