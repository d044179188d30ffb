package node

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// The wire side of /grid/repair/1.0.0: decoding with limits (every
// message comes from an untrusted peer), the layout of a share as one
// word vector, and the owner's signed request.

// repairSessionSize is the length of a repair session ID.
const repairSessionSize = 16

// repairAskDomain separates the owner's signature of a repair request from
// every other use of its key.
const repairAskDomain = "grid-repair-ask"

// repairAskMaxAge bounds how old (or how far in the future) an owner's
// request may be.
const repairAskMaxAge = 10 * time.Minute

// repairPlan is a decoded RepairPlan: the unsigned repair record and the
// sources of the shares that move.
type repairPlan struct {
	session []byte
	rec     *discovery.Repair
	sources []peer.ID // per share; "" when no new holder holds it
	ask     *pb.RepairAsk
}

// decodeRepairPlan checks a plan's form (sizes, peer IDs, counts); its
// content is checked against the manifest by checkRepairPlan.
func decodeRepairPlan(p *pb.RepairPlan) (*repairPlan, error) {
	if len(p.Session) != repairSessionSize {
		return nil, badRequest("repair session id of %d bytes", len(p.Session))
	}
	if err := discovery.ValidID(p.Model); err != nil {
		return nil, badRequest("repair: %v", err)
	}
	owner, err := peer.IDFromBytes(p.Owner)
	if err != nil {
		return nil, badRequest("repair owner: %v", err)
	}
	prev, err := decodePeers(p.PrevHolders)
	if err != nil {
		return nil, err
	}
	holders, err := decodePeers(p.Holders)
	if err != nil {
		return nil, err
	}
	if len(p.Sources) > discovery.MaxShares {
		return nil, badRequest("repair: %d share sources, limit %d", len(p.Sources), discovery.MaxShares)
	}
	sources := make([]peer.ID, len(p.Sources))
	for i, b := range p.Sources {
		if len(b) == 0 {
			continue
		}
		if sources[i], err = peer.IDFromBytes(b); err != nil {
			return nil, badRequest("repair: source of share %d: %v", i, err)
		}
	}
	if p.TimeUnixNano <= 0 {
		return nil, badRequest("repair: time not set")
	}
	rec := &discovery.Repair{
		Model: p.Model, Owner: owner, Base: p.Base, Seq: p.Seq, PrevHolders: prev, Holders: holders,
		SharesVersion: p.SharesVersion, Time: time.Unix(0, p.TimeUnixNano),
	}
	return &repairPlan{session: p.Session, rec: rec, sources: sources, ask: p.Ask}, nil
}

// encodeRepairPlan is decodeRepairPlan's inverse.
func encodeRepairPlan(rp *repairPlan) *pb.RepairPlan {
	r := rp.rec
	out := &pb.RepairPlan{
		Session: rp.session, Model: r.Model, Owner: []byte(r.Owner), Base: r.Base, Seq: r.Seq,
		PrevHolders: peerBytes(r.PrevHolders), Holders: peerBytes(r.Holders), SharesVersion: r.SharesVersion,
		TimeUnixNano: r.Time.UnixNano(), Ask: rp.ask,
	}
	for _, s := range rp.sources {
		out.Sources = append(out.Sources, []byte(s))
	}
	return out
}

// repairAskBytes is what the owner signs to ask for a repair of model at t.
func repairAskBytes(model string, t int64) []byte {
	b := append([]byte(repairAskDomain), 0)
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	return append(b, model...)
}

// signRepairAsk is the owner's request to repair model now.
func signRepairAsk(sk crypto.PrivKey, model string, now time.Time) (*pb.RepairAsk, error) {
	t := now.UnixNano()
	sig, err := sk.Sign(repairAskBytes(model, t))
	if err != nil {
		return nil, fmt.Errorf("sign repair request: %w", err)
	}
	return &pb.RepairAsk{Model: model, TimeUnixNano: t, Sig: sig}, nil
}

// checkRepairAsk checks that ask is owner's request to repair model, made
// within repairAskMaxAge of now.
func checkRepairAsk(ask *pb.RepairAsk, model string, owner peer.ID, now time.Time) error {
	if ask == nil {
		return badRequest("no repair request of the owner")
	}
	if ask.Model != model {
		return badRequest("the owner's repair request names model %q, not %q", ask.Model, model)
	}
	if age := now.Sub(time.Unix(0, ask.TimeUnixNano)); age > repairAskMaxAge || age < -repairAskMaxAge {
		return badRequest("the owner's repair request is %v old", age.Round(time.Second))
	}
	pk, err := owner.ExtractPublicKey()
	if err != nil {
		return badRequest("owner %s: no inlined public key: %v", owner, err)
	}
	if ok, err := pk.Verify(repairAskBytes(model, ask.TimeUnixNano), ask.Sig); err != nil || !ok {
		return badRequest("the repair request of model %q is not signed by its owner", model)
	}
	return nil
}

// shareLayout is the order of a model's weights in one share's word
// vector: the plan's weights by name.
type shareLayout []plan.Value

func newShareLayout(p *plan.Plan) shareLayout {
	l := slices.Clone(p.Weights)
	slices.SortFunc(l, func(a, b plan.Value) int { return cmp.Compare(a.Name, b.Name) })
	return l
}

// words is the length of a share's word vector.
func (l shareLayout) words() int {
	n := 0
	for _, v := range l {
		n += tensor.Size(v.Shape)
	}
	return n
}

// gather returns share i's word vector from a holder's stored weights
// (names replicaName(i, name)).
func (l shareLayout) gather(stored map[string]*tensor.Dense[uint64], i int) ([]uint64, error) {
	out := make([]uint64, 0, l.words())
	for _, v := range l {
		t := stored[replicaName(i, v.Name)]
		if t == nil || !slices.Equal(t.Shape, v.Shape) || len(t.Data) != tensor.Size(v.Shape) {
			return nil, fmt.Errorf("%w: share %d of weight %q is not stored here as the plan says", ErrDamaged, i, v.Name)
		}
		out = append(out, t.Data...)
	}
	return out, nil
}

// scatter adds share i's word vector to a weight map, as a holder stores it.
func (l shareLayout) scatter(words []uint64, i int, into map[string]*tensor.Dense[uint64]) {
	off := 0
	for _, v := range l {
		k := tensor.Size(v.Shape)
		into[replicaName(i, v.Name)] = &tensor.Dense[uint64]{Shape: slices.Clone(v.Shape), Data: slices.Clone(words[off : off+k])}
		off += k
	}
}

// toSet is a word vector in its wire form.
func (l shareLayout) toSet(words []uint64) *pb.WeightSet {
	set := &pb.WeightSet{}
	off := 0
	for _, v := range l {
		k := tensor.Size(v.Shape)
		set.Tensors = append(set.Tensors, encodeWords(v.Name, &tensor.Dense[uint64]{Shape: v.Shape, Data: words[off : off+k]}))
		off += k
	}
	return set
}

// fromSet decodes a wire word vector: exactly the layout's weights, in
// order, with their shapes.
func (l shareLayout) fromSet(set *pb.WeightSet) ([]uint64, error) {
	if set == nil || len(set.Tensors) != len(l) {
		return nil, badRequest("a share of %d weights, the plan has %d", len(set.GetTensors()), len(l))
	}
	out := make([]uint64, 0, l.words())
	for k, v := range l {
		t := set.Tensors[k]
		if t.Name != v.Name {
			return nil, badRequest("weight %d is %q, the plan's is %q", k, t.Name, v.Name)
		}
		d, err := decodeWords(t)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if !slices.Equal(d.Shape, v.Shape) {
			return nil, badRequest("weight %q of shape %v, the plan's is %v", v.Name, d.Shape, v.Shape)
		}
		out = append(out, d.Data...)
	}
	return out, nil
}

// decodePart decodes a contributor's part of a share.
func (l shareLayout) decodePart(p *pb.RepairPart) (share.Part, error) {
	switch {
	case len(p.Seed) > 0 && p.Weights != nil:
		return share.Part{}, badRequest("a part of share %d with a seed and words", p.Share)
	case len(p.Seed) > 0:
		if len(p.Seed) != share.SeedSize {
			return share.Part{}, badRequest("a seed of %d bytes", len(p.Seed))
		}
		var s share.Seed
		copy(s[:], p.Seed)
		return share.Part{Seed: &s}, nil
	}
	w, err := l.fromSet(p.Weights)
	if err != nil {
		return share.Part{}, err
	}
	return share.Part{Words: w}, nil
}

// encodePart is decodePart's inverse.
func (l shareLayout) encodePart(i int, p share.Part) *pb.RepairPart {
	if p.Seed != nil {
		return &pb.RepairPart{Share: uint32(i), Seed: p.Seed[:]}
	}
	return &pb.RepairPart{Share: uint32(i), Weights: l.toSet(p.Words)}
}

// shareDigest names a share's words (the copies of one share must agree).
func shareDigest(i int, words []uint64) []byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	for _, v := range words {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum(nil)
}

// decodeRepairMessage decodes a repair stream's request and checks its
// form (checkRepairMessage).
func decodeRepairMessage(b []byte) (*pb.RepairMessage, error) {
	var m pb.RepairMessage
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, badRequest("decode repair message: %v", err)
	}
	if err := checkRepairMessage(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkRepairMessage checks a repair message's form: one kind, session IDs
// of the right size, a plan that decodes, bounded part counts.
func checkRepairMessage(m *pb.RepairMessage) error {
	switch k := m.Kind.(type) {
	case nil:
		return badRequest("an empty repair message")
	case *pb.RepairMessage_Start:
		if len(k.Start) != repairSessionSize {
			return badRequest("repair session id of %d bytes", len(k.Start))
		}
	case *pb.RepairMessage_Abort:
		if len(k.Abort) != repairSessionSize {
			return badRequest("repair session id of %d bytes", len(k.Abort))
		}
	case *pb.RepairMessage_Prepare:
		if _, err := decodeRepairPlan(k.Prepare); err != nil {
			return err
		}
	case *pb.RepairMessage_Transfer:
		if len(k.Transfer.Session) != repairSessionSize {
			return badRequest("repair session id of %d bytes", len(k.Transfer.Session))
		}
	case *pb.RepairMessage_Contribution:
		if len(k.Contribution.Session) != repairSessionSize {
			return badRequest("repair session id of %d bytes", len(k.Contribution.Session))
		}
		if len(k.Contribution.Parts) > discovery.MaxShares {
			return badRequest("%d parts, limit %d", len(k.Contribution.Parts), discovery.MaxShares)
		}
	case *pb.RepairMessage_Ask:
		if err := discovery.ValidID(k.Ask.Model); err != nil {
			return badRequest("repair request: %v", err)
		}
	}
	return nil
}
