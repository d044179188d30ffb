// Repair: the owner's repair policy in the signed manifest, and the repair
// records, signed by a model's holders, that replace lost holders while
// the owner is offline (Verify, Amend).

package discovery

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
)

// RepairDomain separates repair signatures from every other use of a
// peer's identity key: a holder signs RepairDomain, a zero byte and the
// record's body (see Repair.SigningBytes).
const RepairDomain = "grid-repair"

// MaxRepairCandidates caps the candidate list of a repair policy.
const MaxRepairCandidates = 16

// ErrBadRepair: a repair record does not verify against the manifest it
// amends, or a repair policy is malformed. Refusals of repair records wrap
// it, so callers can test with errors.Is.
var ErrBadRepair = errors.New("invalid repair record")

// RepairPolicy is the owner's advance authorisation, in the signed
// manifest, for the model's holders to replace lost holders without the
// owner (see Repair).
type RepairPolicy struct {
	// Grace is how long a holder must be unreachable before the others
	// may replace it; 0 disables repair.
	Grace time.Duration
	// Candidates, if set, are the only peers a repair may bring in; empty
	// allows any peer that is not the owner, a named dealer or already a
	// holder.
	Candidates []peer.ID
}

// Enabled tells whether the policy allows repairs (Grace > 0).
func (p RepairPolicy) Enabled() bool { return p.Grace > 0 }

// Repair replaces up to Tolerate holders of an mpc model whose manifest has
// a repair policy. It is valid when every holder of the new list signed it
// (SignRepair) and it follows the manifest it amends (Verify): a repair
// needs the owner's advance consent (the policy) and the consent of every
// holder it leaves in place.
type Repair struct {
	Model         string    // the model ID
	Owner         peer.ID   // the model's owner
	Base          uint64    // the owner-signed manifest version it amends
	Seq           uint64    // prev.RepairSeq + 1
	PrevHolders   []peer.ID // the holder list it replaces (the previous effective manifest's Holders)
	Holders       []peer.ID // the new holder list: same length and party order, differing in 1 to Tolerate places
	SharesVersion uint64    // the re-randomised shares' version, greater than prev.Shares()
	Time          time.Time // when the repair was made
	// Sigs holds, for every peer in Holders, its signature over
	// SigningBytes with its libp2p identity key.
	Sigs map[peer.ID][]byte
}

// body returns the deterministic encoding of r's signed fields.
func (r *Repair) body() ([]byte, error) {
	b := &pb.RepairBody{
		Model:         r.Model,
		Owner:         []byte(r.Owner),
		Base:          r.Base,
		Seq:           r.Seq,
		PrevHolders:   peerBytes(r.PrevHolders),
		Holders:       peerBytes(r.Holders),
		SharesVersion: r.SharesVersion,
	}
	if !r.Time.IsZero() {
		b.TimeUnixNano = r.Time.UnixNano()
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal repair of %q: %w", r.Model, err)
	}
	return out, nil
}

// SigningBytes returns what each holder signs: RepairDomain, a zero byte,
// and the deterministic protobuf encoding of r's fields except Sigs
// (pb.RepairBody).
func (r *Repair) SigningBytes() ([]byte, error) {
	b, err := r.body()
	if err != nil {
		return nil, err
	}
	return signingBytes(b), nil
}

func signingBytes(body []byte) []byte {
	out := make([]byte, 0, len(RepairDomain)+1+len(body))
	out = append(out, RepairDomain...)
	out = append(out, 0)
	return append(out, body...)
}

// SignRepair returns the signature of r by sk, whose peer must be one of
// r.Holders. It does not check r against any manifest (Verify does) nor
// change r: the caller stores the signature in r.Sigs.
func SignRepair(r *Repair, sk crypto.PrivKey) ([]byte, error) {
	if sk == nil {
		return nil, fmt.Errorf("sign repair of %q: nil private key", r.Model)
	}
	signer, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("sign repair of %q: signer id: %w", r.Model, err)
	}
	if !slices.Contains(r.Holders, signer) {
		return nil, fmt.Errorf("sign repair of %q: %s is not in the new holder list: %w", r.Model, signer, ErrBadRepair)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return nil, err
	}
	sig, err := sk.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("sign repair of %q: %w", r.Model, err)
	}
	return sig, nil
}

// Verify checks r against prev, the current effective manifest of the
// model (the owner's manifest amended by the repairs before r):
//  1. same model and owner, Base = prev.Version, Seq = prev.RepairSeq+1,
//     PrevHolders = prev.Holders, SharesVersion > prev.Shares(), Time set;
//  2. prev is a live mpc model whose policy is enabled (Grace > 0);
//  3. Holders has prev's length and differs from it in 1 to prev.Tolerate
//     places; every newcomer is a valid peer, not the owner, a dealer or a
//     holder of prev, and one of the policy's candidates when it names
//     any; no peer is named twice;
//  4. Sigs holds exactly one valid signature of every peer in Holders.
//
// Errors wrap ErrBadRepair.
func (r *Repair) Verify(prev *Manifest) error {
	if prev == nil {
		return fmt.Errorf("%w: no manifest to amend", ErrBadRepair)
	}
	if err := r.checkChain(prev); err != nil {
		return err
	}
	if err := r.checkHolders(prev); err != nil {
		return err
	}
	return r.checkSigs()
}

// checkChain checks that r follows prev (rules 1 and 2 of Verify).
func (r *Repair) checkChain(prev *Manifest) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %q seq %d: %s", ErrBadRepair, r.Model, r.Seq, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Model != prev.ID:
		return fail("amends model %q", prev.ID)
	case r.Owner != prev.Owner:
		return fail("owner %s, manifest owner %s", r.Owner, prev.Owner)
	case prev.Deleted:
		return fail("model unpublished")
	case prev.Mode != ModeMPC:
		return fail("a %s-mode model cannot be repaired", prev.Mode)
	case !prev.Repair.Enabled():
		return fail("the owner's manifest (version %d) allows no repair", prev.Version)
	case r.Base != prev.Version:
		return fail("amends version %d, manifest version %d", r.Base, prev.Version)
	case r.Seq != prev.RepairSeq+1:
		return fail("want seq %d", prev.RepairSeq+1)
	case !slices.Equal(r.PrevHolders, prev.Holders):
		return fail("previous holders %v, manifest holders %v", r.PrevHolders, prev.Holders)
	case r.SharesVersion <= prev.Shares():
		return fail("shares version %d not newer than %d", r.SharesVersion, prev.Shares())
	case r.Time.IsZero():
		return fail("time not set")
	}
	return nil
}

// checkHolders checks the new holder list against prev (rule 3 of Verify).
func (r *Repair) checkHolders(prev *Manifest) error {
	if len(r.Holders) != len(prev.Holders) {
		return fmt.Errorf("%w: %q seq %d: %d holders, manifest has %d", ErrBadRepair, r.Model, r.Seq, len(r.Holders), len(prev.Holders))
	}
	replaced := 0
	for i, h := range r.Holders {
		if slices.Contains(r.Holders[:i], h) {
			return fmt.Errorf("%w: %q seq %d: holder %s named twice", ErrBadRepair, r.Model, r.Seq, h)
		}
		if h == prev.Holders[i] {
			continue
		}
		replaced++
		if err := newcomerAllowed(prev, h); err != nil {
			return fmt.Errorf("%w: %q seq %d: new holder %d: %w", ErrBadRepair, r.Model, r.Seq, i, err)
		}
	}
	if replaced == 0 || replaced > prev.Tolerate {
		return fmt.Errorf("%w: %q seq %d: replaces %d holders, want 1 to %d", ErrBadRepair, r.Model, r.Seq, replaced, prev.Tolerate)
	}
	return nil
}

// newcomerAllowed checks that prev's policy lets h be brought in.
func newcomerAllowed(prev *Manifest, h peer.ID) error {
	switch {
	case validPeer(h) != nil:
		return fmt.Errorf("invalid peer id: %w", validPeer(h))
	case h == prev.Owner:
		return fmt.Errorf("%s is the owner", h)
	case slices.Contains(prev.Dealers, h):
		return fmt.Errorf("%s is a dealer (a dealer and a holder together learn the weights)", h)
	case slices.Contains(prev.Holders, h):
		return fmt.Errorf("%s is already a holder", h)
	case len(prev.Repair.Candidates) > 0 && !slices.Contains(prev.Repair.Candidates, h):
		return fmt.Errorf("%s is not a repair candidate of the policy", h)
	}
	return nil
}

// checkSigs checks that every new holder, and no one else, signed r (rule
// 4 of Verify). A holder's public key is the one inlined in its peer ID.
func (r *Repair) checkSigs() error {
	msg, err := r.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRepair, err)
	}
	for p := range r.Sigs {
		if !slices.Contains(r.Holders, p) {
			return fmt.Errorf("%w: %q seq %d: signature of %s, not a holder", ErrBadRepair, r.Model, r.Seq, p)
		}
	}
	for _, h := range r.Holders {
		sig, ok := r.Sigs[h]
		if !ok {
			return fmt.Errorf("%w: %q seq %d: no signature of holder %s", ErrBadRepair, r.Model, r.Seq, h)
		}
		pk, err := h.ExtractPublicKey()
		if err != nil {
			return fmt.Errorf("%w: %q seq %d: holder %s: no inlined public key: %v", ErrBadRepair, r.Model, r.Seq, h, err)
		}
		if ok, err := pk.Verify(msg, sig); err != nil || !ok {
			return fmt.Errorf("%w: %q seq %d: bad signature of holder %s", ErrBadRepair, r.Model, r.Seq, h)
		}
	}
	return nil
}

// Amend verifies r against m (see Verify) and returns the amended manifest:
// a copy of m with r's Holders, SharesVersion and RepairSeq = r.Seq. Its
// Version stays the owner's (r.Base), so its shares version may exceed it.
func (m *Manifest) Amend(r *Repair) (*Manifest, error) {
	if err := r.Verify(m); err != nil {
		return nil, err
	}
	c := m.Clone()
	c.Holders = slices.Clone(r.Holders)
	c.SharesVersion = r.SharesVersion
	c.RepairSeq = r.Seq
	return c, nil
}

// Clone returns a deep copy of r.
func (r *Repair) Clone() *Repair {
	c := *r
	c.PrevHolders = slices.Clone(r.PrevHolders)
	c.Holders = slices.Clone(r.Holders)
	if r.Sigs != nil {
		c.Sigs = make(map[peer.ID][]byte, len(r.Sigs))
		for p, s := range r.Sigs {
			c.Sigs[p] = slices.Clone(s)
		}
	}
	return &c
}

// validateRepairPolicy checks m's policy (Validate): Grace >= 0; with
// Grace 0 no candidates; with a policy, mpc mode and Tolerate >= 1; at
// most MaxRepairCandidates distinct valid candidates.
func (m *Manifest) validateRepairPolicy() error {
	p := m.Repair
	switch {
	case p.Grace < 0:
		return fmt.Errorf("%w: %q: repair grace %v is negative", ErrInvalidManifest, m.ID, p.Grace)
	case p.Grace == 0 && len(p.Candidates) > 0:
		return fmt.Errorf("%w: %q: repair candidates without a repair grace", ErrInvalidManifest, m.ID)
	case p.Grace == 0:
		return nil
	case m.Mode != ModeMPC || m.Tolerate < 1:
		return fmt.Errorf("%w: %q: a repair policy needs an mpc model with tolerate >= 1 (%s, tolerate %d)", ErrInvalidManifest, m.ID, m.Mode, m.Tolerate)
	}
	_, err := m.checkPeers("repair candidate", p.Candidates, MaxRepairCandidates, nil, "")
	return err
}

// policyToPB writes m's repair policy into p.
func (m *Manifest) policyToPB(p *pb.Manifest) {
	p.RepairGraceNanos = int64(m.Repair.Grace)
	p.RepairCandidates = peerBytes(m.Repair.Candidates)
}

// policyFromPB decodes p's repair policy into m.
func (m *Manifest) policyFromPB(p *pb.Manifest) error {
	if len(p.RepairCandidates) > MaxRepairCandidates {
		return fmt.Errorf("%w: %d repair candidates, at most %d", ErrInvalidManifest, len(p.RepairCandidates), MaxRepairCandidates)
	}
	cs, err := decodePeers(p.RepairCandidates)
	if err != nil {
		return fmt.Errorf("%w: repair candidate %w", ErrInvalidManifest, err)
	}
	m.Repair = RepairPolicy{Grace: time.Duration(p.RepairGraceNanos), Candidates: cs}
	return nil
}

func peerBytes(ps []peer.ID) [][]byte {
	if len(ps) == 0 {
		return nil
	}
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = []byte(p)
	}
	return out
}

// decodePeers decodes peer ID bytes; the error names the bad index.
func decodePeers(bs [][]byte) ([]peer.ID, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]peer.ID, len(bs))
	for i, b := range bs {
		p, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%d: %v", i, err)
		}
		out[i] = p
	}
	return out, nil
}
