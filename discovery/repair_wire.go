// The wire form of a repair record (pb.RepairRecord): MarshalRepair and
// its bounded decoder UnmarshalRepair.

package discovery

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// Size limits of repair records.
const (
	// MaxRepairSize caps one encoded repair record in bytes (64 holders
	// take about 13 KiB).
	MaxRepairSize = 16 << 10
	// maxSigSize caps one signature (ed25519: 64 bytes).
	maxSigSize = 512
)

// MarshalRepair returns the wire encoding of r (pb.RepairRecord): its body
// as signed and its signatures sorted by signer, so equal records encode
// equally. It does not verify r.
func MarshalRepair(r *Repair) ([]byte, error) {
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	rec := &pb.RepairRecord{Body: body}
	signers := make([]peer.ID, 0, len(r.Sigs))
	for p := range r.Sigs {
		signers = append(signers, p)
	}
	slices.Sort(signers)
	for _, p := range signers {
		rec.Sigs = append(rec.Sigs, &pb.RepairSig{Signer: []byte(p), Signature: r.Sigs[p]})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("marshal repair of %q: %w", r.Model, err)
	}
	if len(b) > MaxRepairSize {
		return nil, fmt.Errorf("marshal repair of %q: %d bytes, cap %d: %w", r.Model, len(b), MaxRepairSize, ErrTooLarge)
	}
	return b, nil
}

// UnmarshalRepair decodes a repair record received from the network or the
// datastore: at most MaxRepairSize bytes, a body in its canonical encoding
// (the one MarshalRepair writes) with a valid model ID, owner and holder
// lists of at most MaxHolders valid peer IDs, and at most MaxHolders
// signatures by distinct valid signers. It does not verify the signatures
// (Verify does, against the manifest). Errors wrap ErrBadRepair or
// ErrTooLarge; it never panics.
func UnmarshalRepair(b []byte) (*Repair, error) {
	if len(b) > MaxRepairSize {
		return nil, fmt.Errorf("decode repair: %d bytes, cap %d: %w", len(b), MaxRepairSize, ErrTooLarge)
	}
	var rec pb.RepairRecord
	if err := proto.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: decode record: %v", ErrBadRepair, err)
	}
	r, err := decodeRepairBody(rec.Body)
	if err != nil {
		return nil, err
	}
	if len(rec.Sigs) > MaxHolders {
		return nil, fmt.Errorf("%w: %q: %d signatures, at most %d", ErrBadRepair, r.Model, len(rec.Sigs), MaxHolders)
	}
	r.Sigs = make(map[peer.ID][]byte, len(rec.Sigs))
	for i, s := range rec.Sigs {
		p, err := peer.IDFromBytes(s.Signer)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: signer %d: %v", ErrBadRepair, r.Model, i, err)
		}
		if _, dup := r.Sigs[p]; dup {
			return nil, fmt.Errorf("%w: %q: two signatures of %s", ErrBadRepair, r.Model, p)
		}
		if len(s.Signature) == 0 || len(s.Signature) > maxSigSize {
			return nil, fmt.Errorf("%w: %q: signature of %s has %d bytes", ErrBadRepair, r.Model, p, len(s.Signature))
		}
		r.Sigs[p] = s.Signature
	}
	return r, nil
}

// decodeRepairBody decodes and checks a signed body (see UnmarshalRepair).
func decodeRepairBody(body []byte) (*Repair, error) {
	var b pb.RepairBody
	if err := proto.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("%w: decode body: %v", ErrBadRepair, err)
	}
	if err := ValidID(b.Model); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRepair, err)
	}
	owner, err := peer.IDFromBytes(b.Owner)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: owner: %v", ErrBadRepair, b.Model, err)
	}
	if len(b.PrevHolders) > MaxHolders || len(b.Holders) > MaxHolders {
		return nil, fmt.Errorf("%w: %q: %d and %d holders, at most %d", ErrBadRepair, b.Model, len(b.PrevHolders), len(b.Holders), MaxHolders)
	}
	r := &Repair{Model: b.Model, Owner: owner, Base: b.Base, Seq: b.Seq, SharesVersion: b.SharesVersion}
	if r.PrevHolders, err = decodePeers(b.PrevHolders); err != nil {
		return nil, fmt.Errorf("%w: %q: previous holder %w", ErrBadRepair, b.Model, err)
	}
	if r.Holders, err = decodePeers(b.Holders); err != nil {
		return nil, fmt.Errorf("%w: %q: holder %w", ErrBadRepair, b.Model, err)
	}
	if b.TimeUnixNano != 0 {
		r.Time = time.Unix(0, b.TimeUnixNano).UTC()
	}
	canon, err := r.body()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRepair, err)
	}
	if !bytes.Equal(canon, body) {
		return nil, fmt.Errorf("%w: %q: body not in canonical encoding", ErrBadRepair, b.Model)
	}
	return r, nil
}
