package node

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// The owner's side of /grid/shares/1.0.0: Publish shares the weights,
// uploads them and announces the manifest. The holder's side is shares.go.

// DefaultHolders is the number of holders Publish uses when
// PublishOptions.Holders is 0.
const DefaultHolders = 3

// PublishOptions tune Publish.
type PublishOptions struct {
	// Holders is the number of share holders (mpc mode, at least 2;
	// 0 = DefaultHolders).
	Holders int
	// Tolerate is F, how many holders may be down (or lost) while the
	// model still answers: replicated additive sharing, every share on at
	// least F+1 holders (discovery.ReplicatedShares); 0 to Holders-2.
	// 0 is one share per holder.
	Tolerate int
	// Plain publishes the weights in plaintext to one "host" peer.
	Plain bool
	// NoRemoteInference makes the holders refuse every query.
	NoRemoteInference bool
	// Dealers are the peers the owner trusts to deal the model's sessions
	// (mpc mode), named in the signed manifest; holders refuse any other
	// dealer (the owner may always deal). nil picks up to DefaultDealers
	// reachable peers advertising the dealer role that are not holders; an
	// empty slice names none (then only the owner can query the model).
	// Named dealers are never picked as holders.
	Dealers []peer.ID
	// InputRange is the largest |input value| the owner declares the model
	// safe for (manifest InputRange: clients refuse larger values); 0
	// declares nothing.
	InputRange float64
	// Progress, if set, is called as the uploads progress, in bytes.
	Progress func(done, total int64)
	// Update replaces a model this node has published already: without
	// it, Publish refuses a model id with a live manifest
	// (ErrModelExists). The old version answers until the new manifest is
	// announced, after every upload is done.
	Update bool
	// Replaces, if set, is called with the live manifest an Update
	// replaces, before the uploads start.
	Replaces func(old *discovery.Manifest)
	// Repair is the repair policy the manifest carries (mpc mode with
	// Tolerate >= 1): how long a holder must be unreachable before the
	// others replace it without the owner, and which peers they may bring
	// in (see discovery.RepairPolicy). The zero value allows no repair.
	Repair discovery.RepairPolicy
}

// Publish shares the model's weights across holders found through discovery
// (or, with Plain, uploads them to one host), then signs and announces the
// manifest. The owner is this node. Holders never include the owner; an
// upload failure names the holder and nothing is announced. A model id
// this node has published already (a live manifest) is refused with a
// *ModelExistsError unless o.Update is set; then its holders keep serving
// the old version until the new manifest, announced once every upload is
// done, replaces it.
func (n *Node) Publish(ctx context.Context, id string, p *plan.Plan, w plan.Weights, o PublishOptions) (*discovery.Manifest, error) {
	m, err := n.stagePublish(ctx, id, p, w, o)
	if err != nil {
		return nil, err
	}
	if err := n.disc.Publish(ctx, m, n.sk); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	n.log.Info("published", "id", id, "mode", m.Mode, "holders", m.Holders, "tolerate", m.Tolerate, "shares", len(m.ShareHolders()), "dealers", m.Dealers, "version", m.Version)
	return m, nil
}

// stagePublish is Publish up to the announcement: it checks the options
// and the previous version, picks the holders and dealers, uploads the
// shares and returns the manifest to sign and announce.
func (n *Node) stagePublish(ctx context.Context, id string, p *plan.Plan, w plan.Weights, o PublishOptions) (*discovery.Manifest, error) {
	if err := discovery.ValidID(id); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	planBytes, outShape, err := encodePlan(p, w)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	prev, version, err := n.nextVersion(ctx, id)
	if err != nil {
		return nil, err
	}
	if prev != nil && !o.Update {
		return nil, fmt.Errorf("publish %q: %w", id, &ModelExistsError{Manifest: prev})
	}
	up := publication{model: id, version: version, planHash: plan.HashBytes(planBytes), plain: o.Plain}
	role, count, err := up.target(o.Holders)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	replicas, err := publishReplicas(id, o, count)
	if err != nil {
		return nil, err
	}
	if up.holders, err = n.pickPeers(ctx, role, count, o.Dealers); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	dealers, err := n.publishDealers(ctx, id, o, up.holders)
	if err != nil {
		return nil, err
	}
	blobs, err := shareReplicated(p, w, count, o.Plain, replicas)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	if prev != nil && o.Replaces != nil {
		o.Replaces(prev)
	}
	if err := n.uploadShares(ctx, up, blobs, o.Progress); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	return &discovery.Manifest{
		ID: id, Owner: n.ID(), Mode: up.mode(), Holders: up.holders,
		InputShape: slices.Clone(p.Input.Shape), OutputShape: outShape,
		PlanHash: up.planHash, Plan: planBytes, AllowRemote: !o.NoRemoteInference, Version: version,
		Dealers: dealers, InputRange: o.InputRange, Tolerate: o.Tolerate, Replicas: replicas,
		Repair: discovery.RepairPolicy{Grace: o.Repair.Grace, Candidates: slices.Clone(o.Repair.Candidates)},
	}, nil
}

// publishReplicas checks o.Tolerate against count holders and returns the
// replica sets of F = o.Tolerate (nil for 0).
func publishReplicas(id string, o PublishOptions, count int) ([][]int, error) {
	switch {
	case o.Tolerate < 0 || o.Tolerate > 0 && (o.Plain || o.Tolerate > count-2):
		return nil, fmt.Errorf("publish %q: %w: --tolerate %d with %d holders: want 0 to %d (with F = N-1 one holder would hold every share), mpc mode only",
			id, ErrBadInput, o.Tolerate, count, max(count-2, 0))
	case o.Tolerate > 0:
		return discovery.ReplicatedShares(count, o.Tolerate), nil
	}
	return nil, nil
}

// encodePlan checks the plan and its weights and returns the plan's
// encoding and its output shape for batch 1.
func encodePlan(p *plan.Plan, w plan.Weights) ([]byte, []int, error) {
	if p == nil {
		return nil, nil, errors.New("nil plan")
	}
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if err := plan.CheckWeights(p, w); err != nil {
		return nil, nil, err
	}
	shapes, err := p.Shapes(1)
	if err != nil {
		return nil, nil, err
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("encode plan: %w", err)
	}
	return b, shapes[p.Output], nil
}

// nextVersion returns the live manifest of model id this node published
// (nil if none) and the version of a new manifest: the time in ms, or one
// more than the version known if that is newer. A model id known under
// another owner is refused (discovery.ErrNameTaken).
func (n *Node) nextVersion(ctx context.Context, id string) (*discovery.Manifest, uint64, error) {
	version := uint64(max(time.Now().UnixMilli(), 1))
	known, err := n.disc.Lookup(ctx, id)
	switch {
	case err == nil && known.Owner != n.ID():
		return nil, 0, fmt.Errorf("publish %q: owned by %s: %w", id, known.Owner, discovery.ErrNameTaken)
	case err == nil:
		// Newer than the known version and than its shares, which a repair
		// (a holder's clock) may have numbered past it.
		return known, max(version, known.Version+1, known.Shares()+1), nil
	case !errors.Is(err, discovery.ErrNotFound):
		n.log.Debug("publish: lookup of the previous version", "id", id, "err", err)
	}
	// An unpublished model's tombstone still orders the versions.
	if m, ok := n.disc.Latest(id); ok && m.Version >= version {
		version = m.Version + 1
	}
	return nil, version, nil
}

// publication is what an owner uploads of one model version: the weight
// shares of its holders (or its plain host).
type publication struct {
	model    string
	version  uint64
	planHash string
	plain    bool
	holders  []peer.ID // in party order
}

func (u publication) mode() string {
	if u.plain {
		return discovery.ModePlain
	}
	return discovery.ModeMPC
}

// role is holder i's part, as errors name it.
func (u publication) role(i int) string {
	if u.plain {
		return "host"
	}
	return fmt.Sprintf("holder %d", i)
}

// target is the role of the peers the upload goes to and how many: one
// host in plain mode, else holders (0 = DefaultHolders, at least 2).
func (u publication) target(holders int) (role string, count int, err error) {
	if u.plain {
		return RoleHost, 1, nil
	}
	if holders == 0 {
		holders = DefaultHolders
	}
	if holders < 2 {
		return "", 0, fmt.Errorf("%d holders: mpc mode needs at least 2", holders)
	}
	return RoleHolder, holders, nil
}

// uploadShares sends holder i blob i, all at once, reporting the bytes
// sent to progress (if set). If any upload fails, nothing is announced:
// the holders that stored their part are asked to drop it (best effort),
// so no orphan shares stay behind, and the error names every holder that
// failed.
func (n *Node) uploadShares(ctx context.Context, u publication, blobs [][]byte, progress func(done, total int64)) error {
	var total int64
	for _, b := range blobs {
		total += int64(len(b))
	}
	var done atomic.Int64
	var mu sync.Mutex
	sent := func(k int) {
		d := done.Add(int64(k))
		if progress != nil {
			mu.Lock()
			progress(d, total)
			mu.Unlock()
		}
	}
	holders := peerBytes(u.holders)
	errs := make([]error, len(u.holders))
	forEach(len(u.holders), func(i int) {
		sum := sha256.Sum256(blobs[i])
		hdr := &pb.UploadHeader{
			Model: u.model, Mode: u.mode(), Version: u.version, PlanHash: u.planHash, Party: uint32(i),
			Holders: holders, TotalBytes: uint64(len(blobs[i])), Checksum: sum[:],
		}
		if err := n.upload(ctx, u.holders[i], hdr, blobs[i], sent); err != nil {
			errs[i] = &PeerError{Peer: u.holders[i], Role: u.role(i), Err: fmt.Errorf("upload shares: %w", err)}
		}
	})
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	forEach(len(u.holders), func(i int) {
		if errs[i] != nil {
			return
		}
		if derr := n.dropUpload(ctx, u.holders[i], u.model, u.version); derr != nil {
			n.log.Warn("drop shares after a failed publish", "holder", u.holders[i], "model", u.model, "err", derr)
		}
	})
	return err
}

// forEach runs f(0), ..., f(count-1) concurrently and waits for them.
func forEach(count int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// publishDealers returns the dealers to name in a new manifest: the ones
// asked for (the owner left out: it may always deal), or up to
// DefaultDealers advertised dealers that are not holders. Plain mode has
// none.
func (n *Node) publishDealers(ctx context.Context, id string, o PublishOptions, holders []peer.ID) ([]peer.ID, error) {
	if o.Plain {
		if len(o.Dealers) > 0 {
			return nil, fmt.Errorf("publish %q: %w: a plain-mode model has no dealers", id, ErrBadInput)
		}
		return nil, nil
	}
	if o.Dealers == nil {
		ds := n.findDealers(ctx, DefaultDealers, holders)
		if len(ds) == 0 {
			n.log.Warn("no dealer advertised that is not a holder: only the owner can query this model until it names dealers", "id", id)
		}
		return ds, nil
	}
	var out []peer.ID
	for _, d := range o.Dealers {
		if d == n.ID() || containsPeer(out, d) {
			continue
		}
		if containsPeer(holders, d) {
			return nil, fmt.Errorf("publish %q: %w: dealer %s is one of the holders", id, ErrBadInput, d)
		}
		out = append(out, d)
	}
	if len(out) > discovery.MaxDealers {
		return nil, fmt.Errorf("publish %q: %w: %d dealers, at most %d", id, ErrBadInput, len(out), discovery.MaxDealers)
	}
	return out, nil
}

// shareWeights encodes the weights (fixed point) and splits each into count
// additive shares, returning one WeightSet blob per holder; in plain mode
// the one blob holds the float64 bit patterns.
func shareWeights(p *plan.Plan, w plan.Weights, count int, plain bool) ([][]byte, error) {
	return shareReplicated(p, w, count, plain, nil)
}

// shareReplicated is shareWeights for count holders; with replicas (share i held
// by the holders replicas[i]) the weights are split into len(replicas)
// shares and holder j's blob holds every share it holds, weight name
// prefixed by the share (replicaName).
func shareReplicated(p *plan.Plan, w plan.Weights, count int, plain bool, replicas [][]int) ([][]byte, error) {
	nshares := count
	if len(replicas) > 0 {
		nshares = len(replicas)
	}
	sets := make([]map[string]*tensor.Dense[uint64], count)
	for i := range sets {
		sets[i] = map[string]*tensor.Dense[uint64]{}
	}
	enc := fixed.Default()
	for _, v := range p.Weights {
		t := w[v.Name]
		if plain {
			bits := &tensor.Dense[uint64]{Shape: t.Shape, Data: make([]uint64, len(t.Data))}
			for i, x := range t.Data {
				bits.Data[i] = math.Float64bits(x)
			}
			sets[0][v.Name] = bits
			continue
		}
		e, err := enc.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("weight %q: %w", v.Name, err)
		}
		shares, err := share.Split(e, nshares, crand.Reader)
		if err != nil {
			return nil, fmt.Errorf("weight %q: %w", v.Name, err)
		}
		for i, s := range shares {
			if len(replicas) == 0 {
				sets[i][v.Name] = s
				continue
			}
			for _, j := range replicas[i] {
				sets[j][replicaName(i, v.Name)] = s
			}
		}
	}
	blobs := make([][]byte, count)
	for i, s := range sets {
		b, err := encodeWeightSet(s)
		if err != nil {
			return nil, err
		}
		blobs[i] = b
	}
	return blobs, nil
}

// uploadTimeout bounds an upload of size bytes: the session timeout plus a
// second per MiB.
func (n *Node) uploadTimeout(size int) time.Duration {
	return n.cfg.SessionTimeout + time.Duration(size>>20)*time.Second
}

// upload sends one holder its blob on /grid/shares/1.0.0 and waits for the
// holder's status (sent after it stored the blob).
func (n *Node) upload(ctx context.Context, p peer.ID, hdr *pb.UploadHeader, blob []byte, progress func(int)) error {
	s, err := n.openStream(ctx, p, ProtoShares, "open stream")
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(n.uploadTimeout(len(blob))))
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := writeMsg(s, hdr); err != nil {
		s.Reset()
		return fmt.Errorf("send header: %w", err)
	}
	// The holder may refuse before it has read everything (limits, a bad
	// header): its status is read concurrently, and a refusal stops the
	// upload at once with the holder's reason.
	type statusResult struct {
		st  *pb.Status
		err error
	}
	statusC := make(chan statusResult, 1)
	var writing atomic.Bool
	writing.Store(true)
	go func() {
		var st pb.Status
		err := newFrameReader(s).readMsg(&st, maxControlFrame)
		if err == nil && st.Code != pb.Code_OK && writing.Load() {
			s.Reset() // unblock the writer: the holder reads no more
		}
		statusC <- statusResult{&st, err}
	}()
	refused := func(werr error) error {
		select {
		case r := <-statusC:
			if r.err == nil {
				if err := errorFromStatus(r.st); err != nil {
					return err
				}
			}
		case <-time.After(time.Second):
		}
		return werr
	}
	for off := 0; off < len(blob); off += chunkSize {
		end := min(off+chunkSize, len(blob))
		if err := writeMsg(s, &pb.UploadChunk{Data: blob[off:end]}); err != nil {
			s.Reset()
			return refused(fmt.Errorf("send chunk at %d: %w", off, err))
		}
		n.met.bytesSent.WithLabelValues("shares").Add(float64(end - off))
		progress(end - off)
	}
	writing.Store(false)
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return refused(fmt.Errorf("close write: %w", err))
	}
	r := <-statusC
	if r.err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read status: %w", r.err)
	}
	return errorFromStatus(r.st)
}

// dropUpload asks holder p to delete the shares of model id, version, that
// this node uploaded.
func (n *Node) dropUpload(ctx context.Context, p peer.ID, id string, version uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st pb.Status
	fs, err := n.call(ctx, p, dropExchange, &pb.UploadHeader{Model: id, Version: version, Drop: true}, &st)
	if err != nil {
		return err
	}
	fs.s.Close()
	return nil
}
