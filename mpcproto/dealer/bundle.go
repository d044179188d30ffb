package dealer

import (
	"encoding/binary"
	"fmt"

	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/share"
)

// Bundle is one party's material for one session, as sent by the dealer:
// a PRG seed, and for the last party the explicit corrections.
type Bundle struct {
	// Party is the receiving party's index and Parties the session's N.
	Party, Parties int
	// Batch is the batch size the material was dealt for.
	Batch int
	// Frac is the fixed-point precision the material was dealt for.
	Frac uint
	// PlanHash is the SHA-256 of the plan's encoding (plan.Plan.Hash).
	PlanHash [32]byte
	// Masks is the ID of the weight masks the material was dealt for
	// (DealMasked), zero when none.
	Masks [32]byte
	// Seed keys the party's PRG.
	Seed share.Seed
	// Explicit holds the last party's shares of the derived parts, in
	// schedule order; it is empty for the other parties.
	Explicit []uint64
	// Common holds the words every party receives alike, in schedule
	// order: the correction words of the DCF keys of a two-party session
	// (see UsesFSS); empty otherwise.
	Common []uint64
}

const (
	bundleMagic = "GRDB"
	// bundleVersion 2 added the common words.
	bundleVersion = 2
	// maskVersion is the version of the mask bundle and mask state.
	maskVersion = 1
	// bundleHeader: magic, version, frac, party u16, parties u16, batch u32,
	// plan hash, masks ID, seed, explicit count u64, common count u64.
	bundleHeader = 4 + 1 + 1 + 2 + 2 + 4 + 32 + 32 + share.SeedSize + 8 + 8
	// MaxBatch bounds the batch size a bundle may name.
	MaxBatch = 1 << 24
)

// Size is the length of the bundle's encoding in bytes.
func (b *Bundle) Size() int { return bundleHeader + 8*(len(b.Explicit)+len(b.Common)) }

// Marshal encodes the bundle (little-endian, fixed header then the words).
func (b *Bundle) Marshal() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make([]byte, b.Size())
	copy(out, bundleMagic)
	out[4] = bundleVersion
	out[5] = byte(b.Frac)
	binary.LittleEndian.PutUint16(out[6:], uint16(b.Party))
	binary.LittleEndian.PutUint16(out[8:], uint16(b.Parties))
	binary.LittleEndian.PutUint32(out[10:], uint32(b.Batch))
	copy(out[14:46], b.PlanHash[:])
	copy(out[46:78], b.Masks[:])
	copy(out[78:110], b.Seed[:])
	binary.LittleEndian.PutUint64(out[110:], uint64(len(b.Explicit)))
	binary.LittleEndian.PutUint64(out[118:], uint64(len(b.Common)))
	for i, v := range append(b.Explicit[:len(b.Explicit):len(b.Explicit)], b.Common...) {
		binary.LittleEndian.PutUint64(out[bundleHeader+8*i:], v)
	}
	return out, nil
}

func (b *Bundle) check() error {
	switch {
	case b.Parties < 2 || b.Parties > MaxParties:
		return fmt.Errorf("dealer: bundle for %d parties: need 2..%d", b.Parties, MaxParties)
	case b.Party < 0 || b.Party >= b.Parties:
		return fmt.Errorf("dealer: bundle party %d out of range for %d parties", b.Party, b.Parties)
	case b.Batch < 1 || b.Batch > MaxBatch:
		return fmt.Errorf("dealer: bundle batch %d out of range 1..%d", b.Batch, MaxBatch)
	case b.Frac > fixed.MaxFrac:
		return fmt.Errorf("dealer: bundle precision %d bits exceeds %d", b.Frac, fixed.MaxFrac)
	case b.Party != b.Parties-1 && len(b.Explicit) > 0:
		return fmt.Errorf("dealer: bundle for party %d of %d carries %d explicit words (only the last party's may)",
			b.Party, b.Parties, len(b.Explicit))
	}
	return nil
}

// UnmarshalBundle decodes a bundle; it checks the header, the sizes and the
// ranges of every field, and never keeps a reference to data.
func UnmarshalBundle(data []byte) (*Bundle, error) {
	if len(data) < bundleHeader {
		return nil, fmt.Errorf("dealer: bundle of %d bytes is shorter than its %d-byte header", len(data), bundleHeader)
	}
	if err := checkMagic(data, bundleMagic, bundleVersion, "bundle"); err != nil {
		return nil, err
	}
	b := &Bundle{
		Frac:    uint(data[5]),
		Party:   int(binary.LittleEndian.Uint16(data[6:])),
		Parties: int(binary.LittleEndian.Uint16(data[8:])),
		Batch:   int(binary.LittleEndian.Uint32(data[10:])),
	}
	copy(b.PlanHash[:], data[14:46])
	copy(b.Masks[:], data[46:78])
	copy(b.Seed[:], data[78:110])
	count, ncommon := binary.LittleEndian.Uint64(data[110:]), binary.LittleEndian.Uint64(data[118:])
	rest := uint64(len(data) - bundleHeader)
	if rest%8 != 0 || count > rest/8 || ncommon != rest/8-count {
		return nil, fmt.Errorf("dealer: bundle announces %d explicit and %d common words but carries %d bytes after its header",
			count, ncommon, rest)
	}
	words := func(off, n uint64) []uint64 {
		if n == 0 {
			return nil
		}
		out := make([]uint64, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(data[bundleHeader+8*(off+uint64(i)):])
		}
		return out
	}
	b.Explicit, b.Common = words(0, count), words(count, ncommon)
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}

// checkMagic checks the magic and the version that open each of the
// package's encodings (data holds at least 5 bytes); what names the
// encoding in the errors.
func checkMagic(data []byte, magic string, version byte, what string) error {
	if string(data[:4]) != magic {
		return fmt.Errorf("dealer: not a %s (bad magic)", what)
	}
	if data[4] != version {
		return fmt.Errorf("dealer: %s version %d, want %d", what, data[4], version)
	}
	return nil
}
