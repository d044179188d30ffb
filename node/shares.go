package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	crand "crypto/rand"
	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/fixed"
	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/share"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/node/pb"
)

// DefaultHolders is the number of holders Publish uses when
// PublishOptions.Holders is 0.
const DefaultHolders = 3

// PublishOptions tune Publish.
type PublishOptions struct {
	// Holders is the number of share holders (mpc mode, at least 2;
	// 0 = DefaultHolders).
	Holders int
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
}

// Publish shares the model's weights across holders found through discovery
// (or, with Plain, uploads them to one host), then signs and announces the
// manifest. The owner is this node. Holders never include the owner; an
// upload failure names the holder and nothing is announced.
func (n *Node) Publish(ctx context.Context, id string, p *plan.Plan, w plan.Weights, o PublishOptions) (*discovery.Manifest, error) {
	if err := discovery.ValidID(id); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if p == nil {
		return nil, fmt.Errorf("publish %q: nil plan", id)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	if err := plan.CheckWeights(p, w); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	shapes, err := p.Shapes(1)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	planBytes, err := p.Marshal()
	if err != nil {
		return nil, fmt.Errorf("publish %q: encode plan: %w", id, err)
	}
	planHash := plan.HashBytes(planBytes)

	version := uint64(max(time.Now().UnixMilli(), 1))
	known, err := n.disc.Lookup(ctx, id)
	switch {
	case err == nil && known.Owner != n.ID():
		return nil, fmt.Errorf("publish %q: owned by %s: %w", id, known.Owner, discovery.ErrNameTaken)
	case err == nil && known.Version >= version:
		version = known.Version + 1
	case err != nil && !errors.Is(err, discovery.ErrNotFound):
		n.log.Debug("publish: lookup of the previous version", "id", id, "err", err)
	}

	mode, role, count := discovery.ModeMPC, RoleHolder, o.Holders
	if o.Plain {
		mode, role, count = discovery.ModePlain, RoleHost, 1
	} else {
		if count == 0 {
			count = DefaultHolders
		}
		if count < 2 {
			return nil, fmt.Errorf("publish %q: %d holders: mpc mode needs at least 2", id, count)
		}
	}
	peers, err := n.pickPeers(ctx, role, count, o.Dealers)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	dealers, err := n.publishDealers(ctx, id, o, peers)
	if err != nil {
		return nil, err
	}
	blobs, err := shareWeights(p, w, count, o.Plain)
	if err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	holders := make([][]byte, count)
	for i, pi := range peers {
		holders[i] = []byte(pi)
	}
	var total int64
	for _, b := range blobs {
		total += int64(len(b))
	}
	var done atomic.Int64
	var progressMu sync.Mutex
	progress := func(k int) {
		d := done.Add(int64(k))
		if o.Progress != nil {
			progressMu.Lock()
			o.Progress(d, total)
			progressMu.Unlock()
		}
	}
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum := sha256.Sum256(blobs[i])
			hdr := &pb.UploadHeader{
				Model: id, Mode: mode, Version: version, PlanHash: planHash, Party: uint32(i),
				Holders: holders, TotalBytes: uint64(len(blobs[i])), Checksum: sum[:],
			}
			if err := n.upload(ctx, peers[i], hdr, blobs[i], progress); err != nil {
				role := fmt.Sprintf("holder %d", i)
				if o.Plain {
					role = "host"
				}
				errs[i] = &PeerError{Peer: peers[i], Role: role, Err: fmt.Errorf("upload shares: %w", err)}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// Nothing is announced; the holders that stored their part drop it
		// (best effort), so no orphan shares stay behind.
		for i := range count {
			if errs[i] == nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if derr := n.dropUpload(ctx, peers[i], id, version); derr != nil {
						n.log.Warn("drop shares after a failed publish", "holder", peers[i], "model", id, "err", derr)
					}
				}()
			}
		}
		wg.Wait()
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	inShape := append([]int(nil), p.Input.Shape...)
	m := &discovery.Manifest{
		ID: id, Owner: n.ID(), Mode: mode, Holders: peers,
		InputShape: inShape, OutputShape: shapes[p.Output],
		PlanHash: planHash, Plan: planBytes, AllowRemote: !o.NoRemoteInference, Version: version,
		Dealers: dealers, InputRange: o.InputRange,
	}
	if err := n.disc.Publish(ctx, m, n.sk); err != nil {
		return nil, fmt.Errorf("publish %q: %w", id, err)
	}
	n.log.Info("published", "id", id, "mode", mode, "holders", peers, "dealers", dealers, "version", version)
	return m, nil
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
		shares, err := share.Split(e, count, crand.Reader)
		if err != nil {
			return nil, fmt.Errorf("weight %q: %w", v.Name, err)
		}
		for i, s := range shares {
			sets[i][v.Name] = s
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

// pickPeers finds count peers advertising role (not this node, not in
// exclude) that it can connect to, waiting up to Timing.PeerWait for enough of
// them to be advertised, and returns them in random order.
func (n *Node) pickPeers(ctx context.Context, role string, count int, exclude []peer.ID) ([]peer.ID, error) {
	deadline := time.Now().Add(n.cfg.Timing.PeerWait)
	var found []peer.ID
	for {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ais, err := n.disc.FindPeers(fctx, role, 64)
		cancel()
		found = found[:0]
		if err == nil {
			for _, ai := range ais {
				if ai.ID == n.ID() || containsPeer(exclude, ai.ID) || containsPeer(found, ai.ID) {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				cerr := n.h.Connect(cctx, ai)
				cancel()
				if cerr != nil {
					n.log.Debug("skip unreachable peer", "role", role, "peer", ai.ID, "err", cerr)
					continue
				}
				found = append(found, ai.ID)
			}
		}
		if len(found) >= count {
			rand.Shuffle(len(found), func(i, j int) { found[i], found[j] = found[j], found[i] })
			return append([]peer.ID(nil), found[:count]...), nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("find %q peers: %w", role, err)
			}
			return nil, fmt.Errorf("found %d reachable %q peers (owner and excluded peers left out), need %d", len(found), role, count)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func containsPeer(ps []peer.ID, p peer.ID) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
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

// checkUploadHeader validates an upload header against this holder.
func checkUploadHeader(hdr *pb.UploadHeader, self peer.ID) ([]peer.ID, error) {
	if err := discovery.ValidID(hdr.Model); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if hdr.Mode != discovery.ModeMPC && hdr.Mode != discovery.ModePlain {
		return nil, fmt.Errorf("%w: mode %q", errBadRequest, hdr.Mode)
	}
	if len(hdr.Checksum) != sha256.Size {
		return nil, fmt.Errorf("%w: checksum of %d bytes", errBadRequest, len(hdr.Checksum))
	}
	if hdr.TotalBytes > maxUpload {
		return nil, fmt.Errorf("%w: upload of %d bytes over the %d-byte limit", errBadRequest, hdr.TotalBytes, maxUpload)
	}
	if len(hdr.PlanHash) != 64 {
		return nil, fmt.Errorf("%w: plan hash %q", errBadRequest, hdr.PlanHash)
	}
	holders, err := decodePeers(hdr.Holders)
	if err != nil {
		return nil, err
	}
	if hdr.Mode == discovery.ModePlain && len(holders) != 1 {
		return nil, fmt.Errorf("%w: plain mode with %d hosts", errBadRequest, len(holders))
	}
	if hdr.Mode == discovery.ModeMPC && len(holders) < 2 {
		return nil, fmt.Errorf("%w: mpc mode with %d holders", errBadRequest, len(holders))
	}
	if int(hdr.Party) >= len(holders) || holders[hdr.Party] != self {
		return nil, fmt.Errorf("%w: party %d of %d is not this peer", errBadRequest, hdr.Party, len(holders))
	}
	return holders, nil
}

// maxHolders caps the number of parties of a model or session.
const maxHolders = 64

// decodePeers parses a list of peer IDs, refusing duplicates.
func decodePeers(raw [][]byte) ([]peer.ID, error) {
	if len(raw) > maxHolders {
		return nil, fmt.Errorf("%w: %d holders, limit %d", errBadRequest, len(raw), maxHolders)
	}
	out := make([]peer.ID, len(raw))
	for i, b := range raw {
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: holder %d: %v", errBadRequest, i, err)
		}
		if containsPeer(out[:i], id) {
			return nil, fmt.Errorf("%w: holder %s listed twice", errBadRequest, id)
		}
		out[i] = id
	}
	return out, nil
}

// handleShares receives an upload: header, chunks (memory reserved with
// the resource manager as they arrive), checksum, then one atomic write to
// the store, then the status.
func (n *Node) handleShares(s network.Stream) {
	owner := s.Conn().RemotePeer()
	_ = s.SetReadDeadline(time.Now().Add(n.cfg.SessionTimeout))
	fr := newFrameReader(s)
	err := n.receiveUpload(s, fr, owner)
	if err != nil {
		n.log.Warn("share upload refused", "owner", owner, "err", err)
		n.met.uploads.WithLabelValues("refused").Inc()
		n.met.errors.WithLabelValues("upload").Inc()
	} else {
		n.met.uploads.WithLabelValues("ok").Inc()
	}
	_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if werr := writeMsg(s, statusFromError(err)); werr != nil {
		s.Reset()
		return
	}
	s.Close()
}

func (n *Node) receiveUpload(s network.Stream, fr *frameReader, owner peer.ID) error {
	var hdr pb.UploadHeader
	if err := fr.readMsg(&hdr, maxControlFrame); err != nil {
		return fmt.Errorf("%w: header: %v", errBadRequest, err)
	}
	if hdr.Drop {
		// Only the owner's own upload of exactly this version is dropped.
		sm, err := n.store.get(owner, hdr.Model)
		if err != nil {
			return err
		}
		if sm.meta.Version != hdr.Version {
			return fmt.Errorf("%w: stored version %d, drop asked for %d", errBadRequest, sm.meta.Version, hdr.Version)
		}
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		if err := n.store.remove(ctx, owner, hdr.Model); err != nil {
			return err
		}
		n.log.Info("dropped shares at the owner's request", "model", hdr.Model, "owner", owner, "version", hdr.Version)
		return nil
	}
	holders, err := checkUploadHeader(&hdr, n.ID())
	if err != nil {
		return err
	}
	// One version, one share set: weight masks are bound to the shares
	// they were opened against, so a version's shares are never replaced.
	if sm, err := n.store.get(owner, hdr.Model); err == nil && sm.meta.Version >= hdr.Version {
		return fmt.Errorf("%w: shares of %q version %d are stored; an upload must carry a newer version, got %d",
			errBadRequest, hdr.Model, sm.meta.Version, hdr.Version)
	}
	if err := n.cfg.Testing.RefuseUploads; err != nil {
		return err
	}
	if hdr.Mode == discovery.ModeMPC && !n.hasRole(RoleHolder) {
		return fmt.Errorf("%w: this peer is not a holder", errBadRequest)
	}
	if hdr.Mode == discovery.ModePlain && !n.hasRole(RoleHost) {
		return fmt.Errorf("%w: this peer is not a host", errBadRequest)
	}
	size := int(hdr.TotalBytes)
	release, err := n.reserveService(svcShares, owner, size)
	if err != nil {
		return fmt.Errorf("%w: upload of %d bytes refused by the resource manager: %v", ErrBusy, size, err)
	}
	defer release()
	_ = s.SetReadDeadline(time.Now().Add(n.uploadTimeout(size)))
	var buf bytes.Buffer
	buf.Grow(min(size, 64<<20))
	for buf.Len() < size {
		var c pb.UploadChunk
		if err := fr.readMsg(&c, maxChunk); err != nil {
			return fmt.Errorf("%w: chunk at %d of %d bytes: %v", errBadRequest, buf.Len(), size, err)
		}
		if buf.Len()+len(c.Data) > size {
			return fmt.Errorf("%w: chunks exceed the announced %d bytes", errBadRequest, size)
		}
		buf.Write(c.Data)
		n.met.bytesRecv.WithLabelValues("shares").Add(float64(len(c.Data)))
	}
	blob := buf.Bytes()
	sum := sha256.Sum256(blob)
	if !bytes.Equal(sum[:], hdr.Checksum) {
		return fmt.Errorf("%w: checksum mismatch", errBadRequest)
	}
	n.record("shares", blob)
	weights, err := decodeWeightSet(blob)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	hs := make([]string, len(holders))
	for i, h := range holders {
		hs[i] = h.String()
	}
	meta := shareMeta{
		Model: hdr.Model, Owner: owner.String(), Mode: hdr.Mode, Version: hdr.Version,
		PlanHash: hdr.PlanHash, Party: int(hdr.Party), Holders: hs,
		Size: size, Checksum: hex.EncodeToString(sum[:]),
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	if err := n.store.put(ctx, meta, blob, weights); err != nil {
		return err
	}
	n.log.Info("stored shares", "model", hdr.Model, "owner", owner, "party", hdr.Party, "bytes", size)
	return nil
}
