package discovery

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// FuzzUnmarshalRepair: the repair record decoder never panics, returns
// only records within the limits, re-encodes what it accepts to a record
// that decodes the same, and Verify never panics nor passes on a mutated
// record.
func FuzzUnmarshalRepair(f *testing.F) {
	fx := newRepairFixture(f)
	valid := fx.sign(f, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	good := mustMarshalRepair(f, valid)
	f.Add(good)
	f.Add(mustMarshalRepair(f, draft(fx.m, map[int]peer.ID{1: fx.outsider})))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0x0f})
	unsorted, err := proto.Marshal(&pb.RepairRecord{Body: []byte{0x0a, 0x01, 'x'}, Sigs: []*pb.RepairSig{{Signer: []byte(fx.outsider), Signature: []byte{1}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(unsorted)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRepair(b)
		if err != nil {
			if !errors.Is(err, ErrBadRepair) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrBadRepair nor ErrTooLarge", err)
			}
			return
		}
		if len(b) > MaxRepairSize || len(r.Holders) > MaxHolders || len(r.PrevHolders) > MaxHolders || len(r.Sigs) > MaxHolders || ValidID(r.Model) != nil {
			t.Fatalf("record beyond the limits accepted: %d bytes", len(b))
		}
		again, err := UnmarshalRepair(mustMarshalRepair(t, r))
		if err != nil || !slices.Equal(again.Holders, r.Holders) || again.Seq != r.Seq || len(again.Sigs) != len(r.Sigs) {
			t.Fatalf("re-encoding does not decode the same: %v", err)
		}
		if err := r.Verify(fx.m); err == nil && !bytes.Equal(b, good) {
			t.Fatalf("a mutated record verifies: %x", b)
		}
	})
}

func TestRepairFrameLimits(t *testing.T) {
	chain := make([][]byte, maxRepairChain+1)
	for i := range chain {
		chain[i] = []byte{1}
	}
	_, err := readCatalog(bytes.NewReader(frame(t, &pb.SyncEntry{Envelope: []byte("e"), Repairs: chain})), 10, func([]byte, [][]byte) {})
	if err == nil {
		t.Fatal("catalog entry with too many repairs accepted")
	}
	for name, req := range map[string]*pb.SyncRequest{
		"list with repairs":      {Kind: pb.SyncRequest_LIST, Repairs: chain[:1]},
		"push with a long chain": {Kind: pb.SyncRequest_PUSH, Envelope: []byte("e"), Repairs: chain},
	} {
		var buf bytes.Buffer
		if err := pbio.NewDelimitedWriter(&buf).WriteMsg(req); err != nil {
			t.Fatal(err)
		}
		if _, err := readSyncRequest(&buf); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := UnmarshalRepair(make([]byte, MaxRepairSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	if _, err := decodeStoredChain(mustProto(t, &pb.SyncEntry{Repairs: chain})); !errors.Is(err, ErrBadRepair) {
		t.Fatalf("stored chain over the cap: %v", err)
	}
}

func mustProto(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzChainValidator: the DHT validator of repair chains (network bytes:
// pb.SyncEntry of records) never panics, and accepts only chains that
// decode within the limits.
func FuzzChainValidator(f *testing.F) {
	fx := newRepairFixture(f)
	r1 := fx.sign(f, draft(fx.m, map[int]peer.ID{0: fx.candidates[0]}))
	f.Add(mustProto(f, &pb.SyncEntry{Repairs: [][]byte{mustMarshalRepair(f, r1)}}))
	f.Add(mustProto(f, &pb.SyncEntry{Repairs: [][]byte{{1}, {2}}}))
	f.Add(mustProto(f, &pb.SyncEntry{Envelope: []byte("e")}))
	f.Add([]byte{0x1a, 0xff, 0xff, 0x03})
	v := chainValidator{&Discovery{reg: newRegistry(nil), metrics: NewMetrics(nil), log: testLogger()}}
	key := DHTRepairKey(fx.m.ID)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := v.Validate(key, b); err != nil {
			return
		}
		raws, err := decodeStoredChain(b)
		if err != nil || len(raws) == 0 || len(raws) > maxRepairChain {
			t.Fatalf("accepted a chain of %d records (%v)", len(raws), err)
		}
		if _, err := v.Select(key, [][]byte{b, b}); err != nil {
			t.Fatalf("select of an accepted chain: %v", err)
		}
	})
}
