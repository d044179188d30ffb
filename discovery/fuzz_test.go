package discovery

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// fuzzSeeds are envelopes worth starting from: valid manifests of each
// kind, and broken ones.
func fuzzSeeds(t testing.TB) [][]byte {
	sk, owner := newKey(t)
	other, _ := newKey(t)
	hs := peerIDs(t, 3)
	plain := testManifest("plain", owner, hs[:1], 2)
	plain.Mode = ModePlain
	tomb := &Manifest{ID: "gone", Owner: owner, Version: 7, Time: time.Unix(1, 0), Deleted: true}
	good := mustSeal(t, testManifest("convnet", owner, hs, 1), sk)
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 0x80
	return [][]byte{
		good,
		mustSeal(t, plain, sk),
		mustSeal(t, tomb, sk),
		forged,
		sealRaw(t, testManifest("stolen", owner, hs, 1), other),
		good[:len(good)/2],
		{},
		[]byte("garbage"),
	}
}

// FuzzOpen: Open never panics, and whatever it accepts is a valid
// manifest that re-seals to an envelope Open accepts again.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		m, err := Open(env)
		if err != nil {
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Open accepted an invalid manifest: %v", err)
		}
		payload, err := m.MarshalRecord()
		if err != nil {
			t.Fatalf("marshal accepted manifest: %v", err)
		}
		var back Manifest
		if err := back.UnmarshalRecord(payload); err != nil {
			t.Fatalf("accepted manifest does not round-trip: %v", err)
		}
		if back.ID != m.ID || back.Owner != m.Owner || back.Version != m.Version || back.Deleted != m.Deleted {
			t.Fatalf("round trip changed the manifest: %+v vs %+v", back, m)
		}
	})
}

// FuzzUnmarshalRecord reaches the payload decoder directly (Open only
// reaches it behind a valid signature).
func FuzzUnmarshalRecord(f *testing.F) {
	_, owner := newKey(f)
	for _, m := range []*Manifest{
		testManifest("convnet", owner, peerIDs(f, 2), 1),
		{ID: "gone", Owner: owner, Version: 3, Time: time.Unix(5, 0), Deleted: true},
	} {
		b, err := m.MarshalRecord()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if err := m.UnmarshalRecord(b); err != nil {
			if !errors.Is(err, ErrInvalidManifest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error not wrapping ErrInvalidManifest: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid manifest: %v", err)
		}
	})
}

func frame(t testing.TB, msgs ...*pb.SyncEntry) []byte {
	var buf bytes.Buffer
	w := pbio.NewDelimitedWriter(&buf)
	for _, m := range msgs {
		if err := w.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzReadCatalog: the LIST reply reader never panics, never calls back
// with an empty envelope and stops at its entry cap. The seeds are small
// frames (envelopes of a few bytes: Open has its own fuzz target): with
// real signed envelopes as seeds, the mutated frame lengths made each input
// allocate up to a whole 1 MiB frame and the engine ran a few inputs a
// second. The size cap itself is checked by TestReadCatalogLimits.
func FuzzReadCatalog(f *testing.F) {
	f.Add(frame(f, &pb.SyncEntry{Envelope: []byte("env-1")}, &pb.SyncEntry{Envelope: []byte("env-2")}))
	f.Add(frame(f, &pb.SyncEntry{Envelope: []byte("a")}, &pb.SyncEntry{Envelope: []byte("b")},
		&pb.SyncEntry{Envelope: []byte("c")}, &pb.SyncEntry{Envelope: []byte("d")}))
	f.Add(frame(f, &pb.SyncEntry{}))
	f.Add(frame(f, &pb.SyncEntry{Error: "no"}))
	f.Add(frame(f, &pb.SyncEntry{Envelope: []byte("e"), Repairs: [][]byte{{1}, {2}}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // a frame length over the cap
	f.Add([]byte{0x05, 0x01})                   // a truncated frame
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 3
		calls := 0
		n, err := readCatalog(bytes.NewReader(b), max, func(env []byte, repairs [][]byte) {
			calls++
			if len(env) == 0 || len(repairs) > maxRepairChain {
				t.Fatalf("empty envelope or %d repairs passed on", len(repairs))
			}
		})
		if n != calls || calls > max {
			t.Fatalf("read %d, called %d times, cap %d (err %v)", n, calls, max, err)
		}
	})
}

// FuzzReadSyncRequest: the request reader never panics and only returns
// well-formed requests.
func FuzzReadSyncRequest(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, req := range []*pb.SyncRequest{
		{Kind: pb.SyncRequest_LIST},
		{Kind: pb.SyncRequest_LIST, Digest: make([]byte, 32)},
		{Kind: pb.SyncRequest_LIST, Digest: []byte{1}},
		{Kind: pb.SyncRequest_PUSH, Envelope: seeds[0]},
		{Kind: pb.SyncRequest_PUSH},
		{Kind: pb.SyncRequest_PUSH, Envelope: seeds[0], Repairs: [][]byte{{1}}},
		{Kind: pb.SyncRequest_LIST, Repairs: [][]byte{{1}}},
		{Kind: 7},
	} {
		var buf bytes.Buffer
		if err := pbio.NewDelimitedWriter(&buf).WriteMsg(req); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readSyncRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		switch req.Kind {
		case pb.SyncRequest_LIST:
			if len(req.Envelope) != 0 || len(req.Repairs) != 0 || len(req.Digest) != 0 && len(req.Digest) != 32 {
				t.Fatal("malformed list request accepted")
			}
		case pb.SyncRequest_PUSH:
			if len(req.Envelope) == 0 || len(req.Repairs) > maxRepairChain {
				t.Fatal("empty push or too long a chain accepted")
			}
		default:
			t.Fatalf("kind %d accepted", req.Kind)
		}
	})
}

func TestReadCatalogLimits(t *testing.T) {
	seeds := fuzzSeeds(t)
	cases := []struct {
		name    string
		in      []byte
		max     int
		wantN   int
		wantErr error // nil: no error; errAny: some error
	}{
		{"two entries", frame(t, &pb.SyncEntry{Envelope: seeds[0]}, &pb.SyncEntry{Envelope: seeds[1]}), 10, 2, nil},
		{"empty stream", nil, 10, 0, nil},
		{"over the entry cap", frame(t, &pb.SyncEntry{Envelope: seeds[0]}, &pb.SyncEntry{Envelope: seeds[1]}), 1, 1, errAny},
		{"entry without envelope", frame(t, &pb.SyncEntry{}), 10, 0, errAny},
		{"frame over the size cap", []byte{0xff, 0xff, 0xff, 0x0f}, 10, 0, ErrTooLarge},
		{"frame of the largest size", sizedFrame(t, maxFrameSize), 10, 1, nil},
		{"frame one byte over the cap", sizedFrame(t, maxFrameSize+1), 10, 0, ErrTooLarge},
		{"truncated frame", []byte{0x05, 0x0a}, 10, 0, errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := readCatalog(bytes.NewReader(c.in), c.max, func([]byte, [][]byte) {})
			if n != c.wantN {
				t.Fatalf("read %d entries, want %d", n, c.wantN)
			}
			switch {
			case c.wantErr == nil && err != nil, c.wantErr != nil && err == nil:
				t.Fatalf("err %v, want %v", err, c.wantErr)
			case c.wantErr != nil && c.wantErr != errAny && !errors.Is(err, c.wantErr):
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

// sizedFrame is one catalog frame whose message is exactly size bytes,
// its envelope filled up to that size.
func sizedFrame(t testing.TB, size int) []byte {
	t.Helper()
	for n := size; n > 0; n-- {
		e := &pb.SyncEntry{Envelope: bytes.Repeat([]byte{'e'}, n)}
		if got := proto.Size(e); got == size {
			return frame(t, e)
		} else if got < size {
			break
		}
	}
	t.Fatalf("no catalog entry of %d bytes", size)
	return nil
}
