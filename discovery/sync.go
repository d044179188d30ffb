package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"

	"github.com/gridmpc/grid/discovery/pb"
)

// SyncProtocol is the catalog protocol. A stream carries one SyncRequest:
//   - LIST: the server answers one SyncEntry per manifest it knows
//     (tombstones included), with the model's repair chain, and closes;
//     the client verifies each one as if it came from gossip. If the
//     request's digest equals the server's catalog digest, the server
//     answers nothing.
//   - PUSH: the request carries one envelope and optionally its repair
//     chain; the server verifies and applies them, answers one SyncEntry
//     whose Error is empty on acceptance, and re-gossips what it accepted.
//
// Frames are uvarint-length-prefixed protobufs capped at maxFrameSize.
const SyncProtocol = "/grid/manifests/1.0.0"

const (
	syncServiceName = "grid.discovery"
	// maxFrameSize caps one sync frame: an envelope, a full repair chain
	// and protobuf framing.
	maxFrameSize = MaxManifestSize + maxRepairChain*(MaxRepairSize+8) + 1024
	// syncTimeout bounds one sync stream, both sides.
	syncTimeout = 30 * time.Second
	// minResync is the least time between two catalog pulls from one peer.
	minResync = 5 * time.Second
)

// readSyncRequest reads one request frame from r.
func readSyncRequest(r io.Reader) (*pb.SyncRequest, error) {
	var req pb.SyncRequest
	if err := pbio.NewDelimitedReader(r, maxFrameSize).ReadMsg(&req); err != nil {
		return nil, frameErr("read sync request", err)
	}
	switch req.Kind {
	case pb.SyncRequest_LIST:
		if len(req.Envelope) != 0 || len(req.Repairs) != 0 {
			return nil, errors.New("read sync request: list request with an envelope or repairs")
		}
		if len(req.Digest) != 0 && len(req.Digest) != sha256.Size {
			return nil, fmt.Errorf("read sync request: digest of %d bytes, want %d", len(req.Digest), sha256.Size)
		}
	case pb.SyncRequest_PUSH:
		if len(req.Envelope) == 0 {
			return nil, errors.New("read sync request: push request without an envelope")
		}
		if len(req.Digest) != 0 {
			return nil, errors.New("read sync request: push request with a digest")
		}
		if len(req.Repairs) > maxRepairChain {
			return nil, fmt.Errorf("read sync request: %d repairs, at most %d", len(req.Repairs), maxRepairChain)
		}
	default:
		return nil, fmt.Errorf("read sync request: unknown kind %d", req.Kind)
	}
	return &req, nil
}

// readCatalog reads LIST reply frames from r until end of stream, calling
// fn with each envelope and its repair records. It stops with an error
// after max entries, on a frame over maxFrameSize, on a malformed frame, on
// an entry with no envelope or more than maxRepairChain repairs. fn's
// errors do not stop it (a bad entry is the peer's problem, counted by fn).
func readCatalog(r io.Reader, max int, fn func(env []byte, repairs [][]byte)) (int, error) {
	rd := pbio.NewDelimitedReader(r, maxFrameSize)
	for n := 0; ; n++ {
		var e pb.SyncEntry
		err := rd.ReadMsg(&e)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, frameErr(fmt.Sprintf("read catalog entry %d", n), err)
		}
		if n >= max {
			return n, fmt.Errorf("read catalog: more than %d entries", max)
		}
		if len(e.Envelope) == 0 {
			return n, fmt.Errorf("read catalog entry %d: no envelope", n)
		}
		if len(e.Repairs) > maxRepairChain {
			return n, fmt.Errorf("read catalog entry %d: %d repairs, at most %d", n, len(e.Repairs), maxRepairChain)
		}
		fn(e.Envelope, e.Repairs)
	}
}

func frameErr(what string, err error) error {
	if errors.Is(err, io.ErrShortBuffer) {
		return fmt.Errorf("%s: frame over %d bytes: %w", what, maxFrameSize, ErrTooLarge)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// handleSync serves one sync stream.
func (d *Discovery) handleSync(s network.Stream) {
	remote := s.Conn().RemotePeer()
	select {
	case d.inSyncs <- struct{}{}:
		defer func() { <-d.inSyncs }()
	default:
		d.log.Debug("sync stream refused: too many", "peer", remote)
		_ = s.Reset()
		return
	}
	if err := s.Scope().SetService(syncServiceName); err != nil {
		d.log.Debug("sync stream: attach service", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	if err := s.Scope().ReserveMemory(maxFrameSize, network.ReservationPriorityAlways); err != nil {
		d.log.Debug("sync stream: reserve memory", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(maxFrameSize)
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	if err := d.serveSync(s, remote); err != nil {
		d.log.Debug("sync stream", "peer", remote, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (d *Discovery) serveSync(s network.Stream, remote peer.ID) error {
	req, err := readSyncRequest(s)
	if err != nil {
		return err
	}
	w := pbio.NewDelimitedWriter(s)
	if req.Kind == pb.SyncRequest_LIST {
		if len(req.Digest) != 0 && bytes.Equal(req.Digest, d.reg.digest()) {
			return nil // same catalog: nothing to send
		}
		for _, e := range d.reg.all() {
			if err := w.WriteMsg(&pb.SyncEntry{Envelope: e.env, Repairs: e.raws()}); err != nil {
				return fmt.Errorf("write catalog: %w", err)
			}
		}
		return nil
	}
	v, err := d.ingest(d.ctx, sourcePush, remote, req.Envelope)
	repaired := false
	if v != verdictRefuse {
		repaired, err = d.ingestChain(d.ctx, sourcePush, remote, req.Repairs)
	}
	reply := &pb.SyncEntry{}
	if err != nil {
		reply.Error = err.Error()
	}
	if v == verdictAccept || repaired {
		// Spread it: the pusher is a short-lived client.
		go d.regossip(v == verdictAccept, req.Envelope, repaired, req.Repairs)
	}
	if err := w.WriteMsg(reply); err != nil {
		return fmt.Errorf("write push reply: %w", err)
	}
	return nil
}

// regossip spreads what a push brought: the envelope and the repairs.
func (d *Discovery) regossip(manifest bool, env []byte, repairs bool, raws [][]byte) {
	ctx, cancel := context.WithTimeout(d.ctx, pushTimeout)
	defer cancel()
	if manifest {
		if err := d.gossipOn(ctx, d.topic, env); err != nil {
			d.log.Debug("re-gossip pushed manifest", "err", err)
		}
	}
	for i := 0; repairs && i < len(raws); i++ {
		if err := d.gossipOn(ctx, d.repairTopic, raws[i]); err != nil {
			d.log.Debug("re-gossip pushed repair", "err", err)
		}
	}
}

// syncPeers lists connected peers known to speak the sync protocol.
func (d *Discovery) syncPeers() []peer.ID {
	var out []peer.ID
	for _, p := range d.h.Network().Peers() {
		if ok, err := d.h.Peerstore().SupportsProtocols(p, SyncProtocol); err == nil && len(ok) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// claimSync reports whether p may be pulled now, and marks it.
func (d *Discovery) claimSync(p peer.ID) bool {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	if t, ok := d.lastSync[p]; ok && time.Since(t) < minResync {
		return false
	}
	d.lastSync[p] = time.Now()
	if len(d.lastSync) > 4096 {
		for q, t := range d.lastSync {
			if time.Since(t) > minResync {
				delete(d.lastSync, q)
			}
		}
	}
	return true
}

// syncAsync pulls p's catalog in the background with bounded
// concurrency; unless periodic, at most once per minResync per peer (a
// peer identified on several connections is pulled once).
func (d *Discovery) syncAsync(p peer.ID, periodic bool) {
	if !d.claimSync(p) && !periodic {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case d.outSyncs <- struct{}{}:
		case <-d.ctx.Done():
			return
		}
		defer func() { <-d.outSyncs }()
		ctx, cancel := context.WithTimeout(d.ctx, syncTimeout)
		defer cancel()
		if n, err := d.pull(ctx, p); err != nil {
			d.log.Debug("catalog pull", "peer", p, "entries", n, "err", err)
		}
	}()
}

// Sync pulls, now and in parallel, the catalog of every connected peer that
// speaks the sync protocol, and returns when all are done or ctx ends. The
// error joins the failures; manifests received are applied either way.
func (d *Discovery) Sync(ctx context.Context) error {
	peers := d.syncPeers()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.claimSync(p)
			if _, err := d.pull(ctx, p); err != nil {
				errs[i] = fmt.Errorf("sync with %s: %w", p, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pull fetches and applies p's catalog, returning the entries read.
func (d *Discovery) pull(ctx context.Context, p peer.ID) (int, error) {
	s, err := d.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return 0, fmt.Errorf("open sync stream: %w", err)
	}
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	if err := pbio.NewDelimitedWriter(s).WriteMsg(&pb.SyncRequest{Kind: pb.SyncRequest_LIST, Digest: d.reg.digest()}); err != nil {
		_ = s.Reset()
		return 0, fmt.Errorf("write list request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return 0, fmt.Errorf("close write: %w", err)
	}
	n, err := readCatalog(s, maxRegistryEntries, func(env []byte, repairs [][]byte) {
		if v, _ := d.ingest(ctx, sourceSync, p, env); v != verdictRefuse {
			_, _ = d.ingestChain(ctx, sourceSync, p, repairs)
		}
	})
	if err != nil {
		_ = s.Reset()
		return n, err
	}
	_ = s.Close()
	return n, nil
}

// pushAll pushes env and its repair records to every connected sync peer
// in parallel; failures are logged.
func (d *Discovery) pushAll(ctx context.Context, m *Manifest, env []byte, repairs [][]byte) {
	var wg sync.WaitGroup
	for _, p := range d.syncPeers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, pushTimeout)
			defer cancel()
			if err := d.push(pctx, p, env, repairs); err != nil {
				d.log.Warn("push manifest", "id", m.ID, "version", m.Version, "peer", p, "err", err)
			}
		}()
	}
	wg.Wait()
}

// push sends one envelope and its repair records to p and returns p's
// refusal, if any.
func (d *Discovery) push(ctx context.Context, p peer.ID, env []byte, repairs [][]byte) error {
	s, err := d.h.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return fmt.Errorf("open sync stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := pbio.NewDelimitedWriter(s).WriteMsg(&pb.SyncRequest{Kind: pb.SyncRequest_PUSH, Envelope: env, Repairs: repairs}); err != nil {
		_ = s.Reset()
		return fmt.Errorf("write push: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return fmt.Errorf("close write: %w", err)
	}
	var reply pb.SyncEntry
	if err := pbio.NewDelimitedReader(s, maxFrameSize).ReadMsg(&reply); err != nil {
		_ = s.Reset()
		return frameErr("read push reply", err)
	}
	_ = s.Close()
	if reply.Error != "" {
		return fmt.Errorf("refused by peer: %s", reply.Error)
	}
	return nil
}
