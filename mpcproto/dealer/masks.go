package dealer

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Weight masks ("mask weights once"). Weights do not change between
// queries, so for a (model, dealer) pair the dealer fixes a uniform mask B
// per weight that is the right operand of a MatMul or Conv, the holders
// open F = W - B once (engine.OpenMasks), and every later triple for that
// weight is (A, B, A·B) with a fresh A: a query then opens only X - A, its
// activations' size, instead of the weights' (SecureML and CrypTen do the
// same). F reveals nothing: B is uniform and never used with another W.
//
// Every party expands its share of B from its own mask seed, so B is the
// sum of N PRG streams; the dealer, which holds all seeds, knows B and
// derives the C = A·B of later bundles from it.

// Masks is the dealer's long-term mask state for one plan and N parties.
// Keep it secret: it determines every party's mask shares.
type Masks struct {
	PlanHash [32]byte
	Parties  int
	// ID names the mask set (a hash of the seeds); bundles dealt with it
	// carry it so a party can match them with its opened masks.
	ID    [32]byte
	Seeds []share.Seed

	cache *maskCache // the masks' values, computed once
}

type maskCache struct {
	once sync.Once
	vals map[string][]uint64
	err  error
}

// MaskedWeights lists, in plan order, the weights that get a fixed mask:
// the right operand (input 1) of a Conv, and an operand of a MatMul that
// enters its product as stored (plan.MatMulGeometry: a right operand of
// rank <= 2, a left operand of rank <= 2 or of any rank when the right
// one has rank <= 2; ranks do not depend on the batch).
func MaskedWeights(p *plan.Plan) []string {
	rank := make(map[string]int, len(p.Weights)+len(p.Nodes))
	if shapes, err := p.Shapes(1); err == nil {
		for name, s := range shapes {
			rank[name] = len(s)
		}
	}
	used := make(map[string]bool)
	for _, n := range p.Nodes {
		switch {
		case n.Op == plan.Conv && len(n.Inputs) > 1:
			used[n.Inputs[1]] = true
		case n.Op == plan.MatMul && len(n.Inputs) > 1:
			ra, rb := rank[n.Inputs[0]], rank[n.Inputs[1]]
			if rb >= 1 && rb <= 2 {
				used[n.Inputs[1]] = true
			}
			if ra >= 1 && (ra <= 2 || (rb >= 1 && rb <= 2)) {
				used[n.Inputs[0]] = true
			}
		}
	}
	var out []string
	for _, w := range p.Weights {
		if used[w.Name] {
			out = append(out, w.Name)
		}
	}
	return out
}

// NewMasks draws the mask seeds of a plan for n parties (rng nil means
// crypto/rand).
func NewMasks(p *plan.Plan, n int, rng io.Reader) (*Masks, error) {
	if n < 2 || n > MaxParties {
		return nil, fmt.Errorf("dealer: %d parties: need 2..%d", n, MaxParties)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("dealer: %w", err)
	}
	hash, err := planHash(p)
	if err != nil {
		return nil, err
	}
	m := &Masks{PlanHash: hash, Parties: n, Seeds: make([]share.Seed, n), cache: &maskCache{}}
	for i := range m.Seeds {
		if m.Seeds[i], err = share.NewSeed(rng); err != nil {
			return nil, fmt.Errorf("dealer: %w", err)
		}
	}
	m.ID = maskSetID(m.Seeds)
	return m, nil
}

// values returns the masks B themselves (the sum of every party's share),
// computed on first use. It is safe for concurrent use.
func (m *Masks) values(p *plan.Plan) (map[string][]uint64, error) {
	if m.cache == nil {
		return m.compute(p)
	}
	m.cache.once.Do(func() { m.cache.vals, m.cache.err = m.compute(p) })
	return m.cache.vals, m.cache.err
}

func (m *Masks) compute(p *plan.Plan) (map[string][]uint64, error) {
	out := make(map[string][]uint64)
	for i := range m.Parties {
		sh, err := expandMasks(p, m.Seeds[i])
		if err != nil {
			return nil, err
		}
		for name, s := range sh {
			if out[name] == nil {
				out[name] = make([]uint64, len(s.Data))
			}
			combine(out[name], s.Data, false)
		}
	}
	return out, nil
}

// Prepare computes the masks' values now (they are otherwise computed by
// the first DealMasked), so that a dealer can do it ahead of its first
// query. It is safe for concurrent use.
func (m *Masks) Prepare(p *plan.Plan) error {
	_, err := m.values(p)
	return err
}

// Bundles returns every party's mask bundle, to send once.
func (m *Masks) Bundles() []*MaskBundle {
	out := make([]*MaskBundle, m.Parties)
	for i := range out {
		out[i] = &MaskBundle{Party: i, Parties: m.Parties, PlanHash: m.PlanHash, ID: m.ID, Seed: m.Seeds[i]}
	}
	return out
}

// MaskBundle is one party's part of a mask set: its seed.
type MaskBundle struct {
	Party, Parties int
	PlanHash       [32]byte
	ID             [32]byte
	Seed           share.Seed
}

const (
	maskMagic = "GRDM"
	maskSize  = 4 + 1 + 2 + 2 + 32 + 32 + share.SeedSize
)

// Marshal encodes the mask bundle.
func (b *MaskBundle) Marshal() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make([]byte, maskSize)
	copy(out, maskMagic)
	out[4] = maskVersion
	binary.LittleEndian.PutUint16(out[5:], uint16(b.Party))
	binary.LittleEndian.PutUint16(out[7:], uint16(b.Parties))
	copy(out[9:41], b.PlanHash[:])
	copy(out[41:73], b.ID[:])
	copy(out[73:], b.Seed[:])
	return out, nil
}

func (b *MaskBundle) check() error {
	if b.Parties < 2 || b.Parties > MaxParties {
		return fmt.Errorf("dealer: mask bundle for %d parties: need 2..%d", b.Parties, MaxParties)
	}
	if b.Party < 0 || b.Party >= b.Parties {
		return fmt.Errorf("dealer: mask bundle party %d out of range for %d parties", b.Party, b.Parties)
	}
	return nil
}

// UnmarshalMaskBundle decodes a mask bundle, checking its size and fields.
func UnmarshalMaskBundle(data []byte) (*MaskBundle, error) {
	if len(data) != maskSize {
		return nil, fmt.Errorf("dealer: mask bundle of %d bytes, want %d", len(data), maskSize)
	}
	if err := checkMagic(data, maskMagic, maskVersion, "mask bundle"); err != nil {
		return nil, err
	}
	b := &MaskBundle{
		Party:   int(binary.LittleEndian.Uint16(data[5:])),
		Parties: int(binary.LittleEndian.Uint16(data[7:])),
	}
	copy(b.PlanHash[:], data[9:41])
	copy(b.ID[:], data[41:73])
	copy(b.Seed[:], data[73:])
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}

// Expand returns the party's shares of the masks of p, by weight name.
func (b *MaskBundle) Expand(p *plan.Plan) (map[string]*tensor.Dense[uint64], error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if err := checkPlan(p, b.PlanHash, "mask bundle was made"); err != nil {
		return nil, err
	}
	return expandMasks(p, b.Seed)
}

func expandMasks(p *plan.Plan, seed share.Seed) (map[string]*tensor.Dense[uint64], error) {
	shapes := make(map[string][]int, len(p.Weights))
	for _, w := range p.Weights {
		shapes[w.Name] = w.Shape
	}
	prg := share.NewPRG(seed)
	off := 0 // position in the stream
	out := make(map[string]*tensor.Dense[uint64])
	for _, name := range MaskedWeights(p) {
		s := shapes[name]
		if tensor.Size(s) < 0 || slices.Contains(s, -1) {
			return nil, fmt.Errorf("dealer: weight %q has shape %v", name, s)
		}
		if faultMaskStreamRestart() {
			prg, off = share.NewPRG(seed), 0
		}
		t := tensor.New[uint64](s...)
		prg.Fill(t.Data)
		tapMaskDraw(seed, off, name, t.Data)
		off += len(t.Data)
		out[name] = t
	}
	return out, nil
}

const masksMagic = "GRDK"

// maskSetID is the ID of a mask set: a hash of its seeds.
func maskSetID(seeds []share.Seed) [32]byte {
	h := sha256.New()
	h.Write([]byte("grid mask set"))
	for _, s := range seeds {
		h.Write(s[:])
	}
	var id [32]byte
	copy(id[:], h.Sum(nil))
	return id
}

// Marshal encodes the dealer's mask state for storage (it is secret: it
// determines every party's mask shares).
func (m *Masks) Marshal() ([]byte, error) {
	if m.Parties < 2 || m.Parties > MaxParties || len(m.Seeds) != m.Parties {
		return nil, fmt.Errorf("dealer: masks for %d parties with %d seeds", m.Parties, len(m.Seeds))
	}
	out := make([]byte, 0, 4+1+2+32+32+share.SeedSize*len(m.Seeds))
	out = append(out, masksMagic...)
	out = append(out, maskVersion)
	out = binary.LittleEndian.AppendUint16(out, uint16(m.Parties))
	out = append(out, m.PlanHash[:]...)
	out = append(out, m.ID[:]...)
	for _, s := range m.Seeds {
		out = append(out, s[:]...)
	}
	return out, nil
}

// UnmarshalMasks decodes a mask state, checking its size and that its ID
// matches its seeds.
func UnmarshalMasks(data []byte) (*Masks, error) {
	const head = 4 + 1 + 2 + 32 + 32
	if len(data) < head {
		return nil, fmt.Errorf("dealer: masks of %d bytes, shorter than the %d-byte header", len(data), head)
	}
	if err := checkMagic(data, masksMagic, maskVersion, "mask state"); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint16(data[5:]))
	if n < 2 || n > MaxParties {
		return nil, fmt.Errorf("dealer: mask state for %d parties: need 2..%d", n, MaxParties)
	}
	if len(data) != head+n*share.SeedSize {
		return nil, fmt.Errorf("dealer: mask state for %d parties has %d bytes, want %d", n, len(data), head+n*share.SeedSize)
	}
	m := &Masks{Parties: n, Seeds: make([]share.Seed, n), cache: &maskCache{}}
	copy(m.PlanHash[:], data[7:39])
	copy(m.ID[:], data[39:71])
	for i := range n {
		copy(m.Seeds[i][:], data[head+i*share.SeedSize:])
	}
	if maskSetID(m.Seeds) != m.ID {
		return nil, errors.New("dealer: mask state's ID does not match its seeds")
	}
	return m, nil
}
