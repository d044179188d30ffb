// Manifest: the signed model description, its record encoding,
// validation, Seal and Open.

package discovery

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery/pb"
	"github.com/gridmpc/grid/mpcproto/plan"
)

// Envelope identifiers of a signed manifest (libp2p core/record).
const (
	// ManifestDomain is the signature domain of manifest envelopes: a
	// signature made for another record type never verifies as a manifest.
	ManifestDomain = "grid-manifest"
	// ManifestCodec is the envelope payload type of a manifest.
	ManifestCodec = "/grid/manifest/1"
)

// Size and shape limits enforced on every manifest, signed or received.
const (
	// MaxManifestSize caps a signed manifest envelope in bytes. Larger
	// envelopes are refused before any parsing or signature check.
	MaxManifestSize = 1 << 20
	// MaxIDLen caps a model ID in bytes.
	MaxIDLen = 128
	// MaxHolders caps the number of holders a manifest may name.
	MaxHolders = 64
	// MaxDealers caps the number of dealers a manifest may name.
	MaxDealers = 16
	// MaxRank caps the rank of the input and output shapes.
	MaxRank = 8
	// maxDim caps one shape dimension.
	maxDim = 1 << 31
)

// Modes of a model.
const (
	// ModeMPC: weights additively secret-shared over two or more holders.
	ModeMPC = "mpc"
	// ModePlain: the model is hosted in plaintext by exactly one holder.
	ModePlain = "plain"
)

// Errors returned by Open, Seal, Publish, Unpublish and Lookup. Refusals
// wrap one of them, so callers can test with errors.Is.
var (
	// ErrNotFound: no live manifest with that ID is known locally or in the DHT.
	ErrNotFound = errors.New("model not found")
	// ErrTooLarge: the envelope exceeds MaxManifestSize.
	ErrTooLarge = errors.New("manifest too large")
	// ErrBadEnvelope: the bytes are not a validly signed manifest envelope
	// (malformed, wrong domain or payload type, or a forged signature).
	ErrBadEnvelope = errors.New("invalid manifest envelope")
	// ErrSignerNotOwner: the envelope is signed by a key other than the
	// manifest's Owner.
	ErrSignerNotOwner = errors.New("manifest signer is not its owner")
	// ErrInvalidManifest: a field of the manifest is malformed.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrInvalidID: a model ID is malformed (see ValidID). In a manifest it
	// is wrapped together with ErrInvalidManifest.
	ErrInvalidID = errors.New("invalid model id")
	// ErrNameTaken: the model ID already belongs to another owner.
	ErrNameTaken = errors.New("model id owned by another peer")
	// ErrStaleVersion: the manifest's version is not newer than the known one
	// (a replay, or a conflicting manifest with an equal version).
	ErrStaleVersion = errors.New("manifest version not newer than known")
	// ErrNotOwner: an unpublish was attempted with a key that does not own
	// the model.
	ErrNotOwner = errors.New("not the owner of the model")
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Manifest is a model's public, signed description. It implements
// record.Record, so it travels inside a libp2p signed envelope (see Seal and
// Open); its payload is the protobuf pb.Manifest.
type Manifest struct {
	ID          string    // model name, e.g. "convnet"
	Owner       peer.ID   // the signer
	Mode        string    // "mpc" or "plain"
	Holders     []peer.ID // share-holders in party order (mpc), or the one host (plain)
	InputShape  []int     // plan input shape, -1 = free batch dim
	OutputShape []int     // for batch 1
	PlanHash    string    // hex sha256 of the plan encoding
	Plan        []byte    // the plan encoding (plan.(*Plan).Marshal), public
	AllowRemote bool      // false: holders refuse queries (--no-remote-inference)
	Version     uint64    // strictly increasing per (owner, ID); replays of older versions are refused
	Time        time.Time // when the owner signed this version
	Deleted     bool      // a tombstone written by Unpublish (higher Version)
	// Dealers are the peers the owner trusts to deal the correlated
	// randomness of this model's sessions (mpc mode). The owner may always
	// deal too; holders refuse every other dealer. None is a holder.
	Dealers []peer.ID
	// SharesVersion is the version whose uploaded shares the holders
	// serve: a manifest update that changes only the dealers keeps the
	// shares. 0 means Version (see Shares).
	SharesVersion uint64
	// InputRange is the largest |input value| the owner declares the model
	// safe for (the client refuses larger values); 0 declares nothing.
	InputRange float64
	// Tolerate is F, the number of holders that may be down (or lost)
	// while the model still answers (mpc mode): replicated additive
	// sharing. 0 is one additive share per holder, Replicas empty.
	Tolerate int
	// Replicas, with Tolerate > 0, lists the holders of each additive share
	// (indices into Holders): share i is held by every holder in Replicas[i],
	// at least Tolerate+1 of them. A session uses one live holder per
	// share; a holder acting for several shares adds them up. Empty: share
	// i is held by holder i alone (see ShareHolders).
	Replicas [][]int
	// Repair is the owner's repair policy (mpc mode, Tolerate >= 1).
	Repair RepairPolicy
	// RepairSeq is not signed by the owner: 0 is the manifest as the owner
	// signed it, n the manifest amended by n repair records (see Amend).
	RepairSeq uint64
}

// Shares returns the version of the shares the holders serve.
func (m *Manifest) Shares() uint64 {
	if m.SharesVersion == 0 {
		return m.Version
	}
	return m.SharesVersion
}

// MayDeal tells whether p may deal this model's sessions: the owner, or a
// dealer the manifest names.
func (m *Manifest) MayDeal(p peer.ID) bool {
	return p == m.Owner || slices.Contains(m.Dealers, p)
}

func init() { record.RegisterType(&Manifest{}) }

// Domain implements record.Record.
func (m *Manifest) Domain() string { return ManifestDomain }

// Codec implements record.Record.
func (m *Manifest) Codec() []byte { return []byte(ManifestCodec) }

// MarshalRecord implements record.Record: the deterministic protobuf
// encoding of m. It does not validate m; Seal does.
func (m *Manifest) MarshalRecord() ([]byte, error) {
	p := &pb.Manifest{
		Id:           m.ID,
		Owner:        []byte(m.Owner),
		Mode:         m.Mode,
		PlanHash:     m.PlanHash,
		Plan:         m.Plan,
		AllowRemote:  m.AllowRemote,
		Version:      m.Version,
		TimeUnixNano: m.Time.UnixNano(),
		Deleted:      m.Deleted,
		InputRange:   m.InputRange,
	}
	if m.SharesVersion != 0 && m.SharesVersion != m.Version {
		p.SharesVersion = m.SharesVersion
	}
	p.Tolerate = uint32(max(m.Tolerate, 0))
	for _, hs := range m.Replicas {
		sh := &pb.ShareHolders{}
		for _, j := range hs {
			sh.Holders = append(sh.Holders, uint32(j))
		}
		p.Shares = append(p.Shares, sh)
	}
	for _, d := range m.Dealers {
		p.Dealers = append(p.Dealers, []byte(d))
	}
	m.policyToPB(p)
	if m.Time.IsZero() {
		p.TimeUnixNano = 0
	}
	for _, h := range m.Holders {
		p.Holders = append(p.Holders, []byte(h))
	}
	for _, d := range m.InputShape {
		p.InputShape = append(p.InputShape, int64(d))
	}
	for _, d := range m.OutputShape {
		p.OutputShape = append(p.OutputShape, int64(d))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal manifest %q: %w", m.ID, err)
	}
	return b, nil
}

// UnmarshalRecord implements record.Record. It decodes the payload and
// checks every field (see Validate); it does not check who signed it.
func (m *Manifest) UnmarshalRecord(b []byte) error {
	if len(b) > MaxManifestSize {
		return fmt.Errorf("manifest payload of %d bytes: %w", len(b), ErrTooLarge)
	}
	var p pb.Manifest
	if err := proto.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%w: decode payload: %v", ErrInvalidManifest, err)
	}
	owner, err := peer.IDFromBytes(p.Owner)
	if err != nil {
		return fmt.Errorf("%w: owner: %v", ErrInvalidManifest, err)
	}
	out := Manifest{
		ID:          p.Id,
		Owner:       owner,
		Mode:        p.Mode,
		PlanHash:    p.PlanHash,
		Plan:        p.Plan,
		AllowRemote: p.AllowRemote,
		Version:     p.Version,
		Deleted:     p.Deleted,
		InputRange:  p.InputRange,
	}
	if p.SharesVersion != p.Version {
		out.SharesVersion = p.SharesVersion
	}
	if p.Tolerate > MaxHolders || len(p.Shares) > MaxShares {
		return fmt.Errorf("%w: tolerate %d, %d shares", ErrInvalidManifest, p.Tolerate, len(p.Shares))
	}
	out.Tolerate = int(p.Tolerate)
	for _, sh := range p.Shares {
		if len(sh.Holders) > MaxHolders {
			return fmt.Errorf("%w: a share with %d holders", ErrInvalidManifest, len(sh.Holders))
		}
		hs := make([]int, len(sh.Holders))
		for k, j := range sh.Holders {
			hs[k] = int(min(j, MaxHolders))
		}
		out.Replicas = append(out.Replicas, hs)
	}
	if p.TimeUnixNano != 0 {
		out.Time = time.Unix(0, p.TimeUnixNano).UTC()
	}
	if len(p.Holders) > MaxHolders {
		return fmt.Errorf("%w: %d holders, at most %d", ErrInvalidManifest, len(p.Holders), MaxHolders)
	}
	for i, hb := range p.Holders {
		h, err := peer.IDFromBytes(hb)
		if err != nil {
			return fmt.Errorf("%w: holder %d: %v", ErrInvalidManifest, i, err)
		}
		out.Holders = append(out.Holders, h)
	}
	if len(p.Dealers) > MaxDealers {
		return fmt.Errorf("%w: %d dealers, at most %d", ErrInvalidManifest, len(p.Dealers), MaxDealers)
	}
	for i, db := range p.Dealers {
		d, err := peer.IDFromBytes(db)
		if err != nil {
			return fmt.Errorf("%w: dealer %d: %v", ErrInvalidManifest, i, err)
		}
		out.Dealers = append(out.Dealers, d)
	}
	if err := out.policyFromPB(&p); err != nil {
		return err
	}
	if out.InputShape, err = decodeShape("input shape", p.InputShape); err != nil {
		return err
	}
	if out.OutputShape, err = decodeShape("output shape", p.OutputShape); err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*m = out
	return nil
}

func decodeShape(what string, dims []int64) ([]int, error) {
	if len(dims) > MaxRank {
		return nil, fmt.Errorf("%w: %s has rank %d, at most %d", ErrInvalidManifest, what, len(dims), MaxRank)
	}
	if dims == nil {
		return nil, nil
	}
	out := make([]int, len(dims))
	for i, d := range dims {
		if d < -1 || d > maxDim {
			return nil, fmt.Errorf("%w: %s dim %d is %d", ErrInvalidManifest, what, i, d)
		}
		out[i] = int(d)
	}
	return out, nil
}

// ValidID checks that id is a well-formed model ID: 1 to MaxIDLen bytes of
// ASCII letters, digits, '.', '_' and '-', starting with a letter or digit.
// The error wraps ErrInvalidID.
func ValidID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen || !idPattern.MatchString(id) {
		return fmt.Errorf("%w %q: want 1 to %d characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
			ErrInvalidID, id, MaxIDLen)
	}
	return nil
}

// Validate checks every field of m except the signature:
//  1. ID is a valid model ID (ValidID), Owner a valid peer ID, Version >= 1
//     and Time set;
//  2. a tombstone (Deleted) carries nothing else but may keep the fields;
//  3. otherwise Mode is "mpc" with at least two distinct holders or "plain"
//     with exactly one, shapes have dims >= 1 (or -1 for the batch dim,
//     first input dim only), PlanHash is 64 lowercase hex digits, Plan is
//     non-empty and hashes to PlanHash;
//  4. Dealers (mpc only) are distinct valid peer IDs, none a holder, at
//     most MaxDealers; SharesVersion is at most Version; InputRange is a
//     finite number >= 0;
//  5. Tolerate and Replicas are unset, or replicate the shares
//     (validateShares); the repair policy is valid (validateRepairPolicy).
//
// An amended manifest (RepairSeq > 0) may have SharesVersion > Version.
func (m *Manifest) Validate() error {
	if err := ValidID(m.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if err := validPeer(m.Owner); err != nil {
		return fmt.Errorf("%w: %q: owner: %v", ErrInvalidManifest, m.ID, err)
	}
	if m.Version == 0 {
		return fmt.Errorf("%w: %q: version must be at least 1", ErrInvalidManifest, m.ID)
	}
	if m.Time.IsZero() {
		return fmt.Errorf("%w: %q: time not set", ErrInvalidManifest, m.ID)
	}
	if m.Deleted {
		return nil
	}
	switch m.Mode {
	case ModeMPC:
		if len(m.Holders) < 2 {
			return fmt.Errorf("%w: %q: mpc mode needs at least 2 holders, got %d", ErrInvalidManifest, m.ID, len(m.Holders))
		}
	case ModePlain:
		if len(m.Holders) != 1 {
			return fmt.Errorf("%w: %q: plain mode needs exactly 1 host, got %d", ErrInvalidManifest, m.ID, len(m.Holders))
		}
	default:
		return fmt.Errorf("%w: %q: mode %q, want %q or %q", ErrInvalidManifest, m.ID, m.Mode, ModeMPC, ModePlain)
	}
	holders, err := m.checkPeers("holder", m.Holders, MaxHolders, nil, "")
	if err != nil {
		return err
	}
	if err := m.validateTrust(holders); err != nil {
		return err
	}
	if err := m.validateShares(); err != nil {
		return err
	}
	if err := m.validateRepairPolicy(); err != nil {
		return err
	}
	if err := checkShape(m.ID, "input shape", m.InputShape, true); err != nil {
		return err
	}
	if err := checkShape(m.ID, "output shape", m.OutputShape, false); err != nil {
		return err
	}
	if len(m.PlanHash) != 2*sha256.Size || !isLowerHex(m.PlanHash) {
		return fmt.Errorf("%w: %q: plan hash %q is not 64 lowercase hex digits", ErrInvalidManifest, m.ID, m.PlanHash)
	}
	if len(m.Plan) == 0 {
		return fmt.Errorf("%w: %q: empty plan", ErrInvalidManifest, m.ID)
	}
	if err := plan.VerifyHash(m.Plan, m.PlanHash); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidManifest, m.ID, err)
	}
	return nil
}

// validateTrust checks the dealer list, the shares' version and the input
// range; holders is the set of the manifest's holders.
func (m *Manifest) validateTrust(holders map[peer.ID]bool) error {
	if len(m.Dealers) > 0 && m.Mode != ModeMPC {
		return fmt.Errorf("%w: %q: dealers named for a %s-mode model", ErrInvalidManifest, m.ID, m.Mode)
	}
	if _, err := m.checkPeers("dealer", m.Dealers, MaxDealers, holders, "is also a holder (a dealer and a holder together learn the weights)"); err != nil {
		return err
	}
	if m.SharesVersion > m.Version && m.RepairSeq == 0 {
		return fmt.Errorf("%w: %q: shares version %d is newer than the manifest's version %d", ErrInvalidManifest, m.ID, m.SharesVersion, m.Version)
	}
	if math.IsNaN(m.InputRange) || math.IsInf(m.InputRange, 0) || m.InputRange < 0 {
		return fmt.Errorf("%w: %q: input range %v, want a finite number >= 0", ErrInvalidManifest, m.ID, m.InputRange)
	}
	return nil
}

// validateShares checks the replication: Tolerate and Replicas both zero,
// or (mpc mode) 0 < Tolerate <= N-2 with at least two shares, every share
// held by at least Tolerate+1 distinct holders, every holder holding a
// share, and no holder holding them all.
func (m *Manifest) validateShares() error {
	n := len(m.Holders)
	switch {
	case m.Tolerate == 0 && len(m.Replicas) == 0:
		return nil
	case m.Mode != ModeMPC:
		return fmt.Errorf("%w: %q: replicated shares for a %s-mode model", ErrInvalidManifest, m.ID, m.Mode)
	case m.Tolerate < 0 || m.Tolerate > n-2:
		return fmt.Errorf("%w: %q: tolerate %d with %d holders: want 1 to %d (some holder must miss a share)", ErrInvalidManifest, m.ID, m.Tolerate, n, n-2)
	case len(m.Replicas) < 2 || len(m.Replicas) > MaxShares:
		return fmt.Errorf("%w: %q: %d shares, want 2 to %d", ErrInvalidManifest, m.ID, len(m.Replicas), MaxShares)
	}
	count := make([]int, n)
	for i, hs := range m.Replicas {
		if len(hs) < m.Tolerate+1 {
			return fmt.Errorf("%w: %q: share %d has %d holders, tolerate %d needs %d", ErrInvalidManifest, m.ID, i, len(hs), m.Tolerate, m.Tolerate+1)
		}
		for k, j := range hs {
			if j < 0 || j >= n {
				return fmt.Errorf("%w: %q: share %d: holder index %d of %d", ErrInvalidManifest, m.ID, i, j, n)
			}
			if slices.Contains(hs[:k], j) {
				return fmt.Errorf("%w: %q: share %d names holder %d twice", ErrInvalidManifest, m.ID, i, j)
			}
			count[j]++
		}
	}
	for j, c := range count {
		if c == 0 {
			return fmt.Errorf("%w: %q: holder %d holds no share", ErrInvalidManifest, m.ID, j)
		}
		if c == len(m.Replicas) {
			return fmt.Errorf("%w: %q: holder %d holds every share", ErrInvalidManifest, m.ID, j)
		}
	}
	return nil
}

// checkPeers checks one of the manifest's peer lists: at most max entries,
// valid peer IDs, none named twice and none in not (the error then says
// why); what names an entry ("holder", "dealer"). It returns the list as a
// set.
func (m *Manifest) checkPeers(what string, ps []peer.ID, max int, not map[peer.ID]bool, why string) (map[peer.ID]bool, error) {
	if len(ps) > max {
		return nil, fmt.Errorf("%w: %q: %d %ss, at most %d", ErrInvalidManifest, m.ID, len(ps), what, max)
	}
	seen := make(map[peer.ID]bool, len(ps))
	for i, p := range ps {
		if err := validPeer(p); err != nil {
			return nil, fmt.Errorf("%w: %q: %s %d: %v", ErrInvalidManifest, m.ID, what, i, err)
		}
		if not[p] {
			return nil, fmt.Errorf("%w: %q: %s %s %s", ErrInvalidManifest, m.ID, what, p, why)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: %q: %s %s named twice", ErrInvalidManifest, m.ID, what, p)
		}
		seen[p] = true
	}
	return seen, nil
}

func checkShape(id, what string, dims []int, batchDim bool) error {
	if len(dims) == 0 {
		return fmt.Errorf("%w: %q: empty %s", ErrInvalidManifest, id, what)
	}
	if len(dims) > MaxRank {
		return fmt.Errorf("%w: %q: %s has rank %d, at most %d", ErrInvalidManifest, id, what, len(dims), MaxRank)
	}
	for i, d := range dims {
		ok := d >= 1 && d <= maxDim || d == -1 && i == 0 && batchDim
		if !ok {
			return fmt.Errorf("%w: %q: %s %v: dim %d is %d", ErrInvalidManifest, id, what, dims, i, d)
		}
	}
	return nil
}

// validPeer checks that id is a well-formed peer ID (a multihash).
func validPeer(id peer.ID) error {
	if _, err := peer.IDFromBytes([]byte(id)); err != nil {
		return err
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of m.
func (m *Manifest) Clone() *Manifest {
	c := *m
	c.Holders = slices.Clone(m.Holders)
	c.Dealers = slices.Clone(m.Dealers)
	c.Repair.Candidates = slices.Clone(m.Repair.Candidates)
	if m.Replicas != nil {
		c.Replicas = make([][]int, len(m.Replicas))
		for i, hs := range m.Replicas {
			c.Replicas[i] = slices.Clone(hs)
		}
	}
	c.InputShape = slices.Clone(m.InputShape)
	c.OutputShape = slices.Clone(m.OutputShape)
	c.Plan = bytes.Clone(m.Plan)
	return &c
}

// Seal validates m, checks that sk is the key of m.Owner and returns the
// serialized signed envelope. It does not change m.
func Seal(m *Manifest, sk crypto.PrivKey) ([]byte, error) {
	if sk == nil {
		return nil, fmt.Errorf("seal manifest %q: nil private key", m.ID)
	}
	signer, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("seal manifest %q: signer id: %w", m.ID, err)
	}
	if signer != m.Owner {
		return nil, fmt.Errorf("seal manifest %q: key of %s, owner %s: %w", m.ID, signer, m.Owner, ErrSignerNotOwner)
	}
	if m.RepairSeq != 0 { // the owner's new version drops the repairs: validate it as sent
		m = m.Clone()
		m.RepairSeq = 0
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	env, err := record.Seal(m, sk)
	if err != nil {
		return nil, fmt.Errorf("seal manifest %q: %w", m.ID, err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("seal manifest %q: marshal envelope: %w", m.ID, err)
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("seal manifest %q: envelope of %d bytes, cap %d: %w", m.ID, len(b), MaxManifestSize, ErrTooLarge)
	}
	return b, nil
}

// Open verifies a serialized manifest envelope and returns its manifest:
//  1. the envelope is at most MaxManifestSize bytes;
//  2. its signature verifies in ManifestDomain, its payload type is
//     ManifestCodec, and the payload decodes to a valid manifest;
//  3. the signing key is the key of the manifest's Owner.
//
// It never panics on any input.
func Open(envelope []byte) (*Manifest, error) {
	if len(envelope) > MaxManifestSize {
		return nil, fmt.Errorf("open manifest: envelope of %d bytes, cap %d: %w", len(envelope), MaxManifestSize, ErrTooLarge)
	}
	env, rec, err := record.ConsumeEnvelope(envelope, ManifestDomain)
	if err != nil {
		if errors.Is(err, ErrInvalidManifest) || errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("open manifest: %w", err)
		}
		return nil, fmt.Errorf("open manifest: %w: %v", ErrBadEnvelope, err)
	}
	m, ok := rec.(*Manifest)
	if !ok {
		return nil, fmt.Errorf("open manifest: %w: payload type %q is a %T", ErrBadEnvelope, env.PayloadType, rec)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("open manifest %q: %w: signer key: %v", m.ID, ErrBadEnvelope, err)
	}
	if signer != m.Owner {
		return nil, fmt.Errorf("open manifest %q: signed by %s, owner %s: %w", m.ID, signer, m.Owner, ErrSignerNotOwner)
	}
	return m, nil
}
