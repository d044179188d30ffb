package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node/pb"
)

// The holder's side of /grid/shares/1.0.0: receive, check and store an
// upload, or drop one. The owner's side is publish.go.

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

// receiveUpload reads an upload (or a drop request) from owner and
// stores it; the error is what the owner's status says.
func (n *Node) receiveUpload(s network.Stream, fr *frameReader, owner peer.ID) error {
	var hdr pb.UploadHeader
	if err := fr.readMsg(&hdr, maxControlFrame); err != nil {
		return fmt.Errorf("%w: header: %v", errBadRequest, err)
	}
	if hdr.Drop {
		return n.dropShares(owner, &hdr)
	}
	holders, err := n.checkUpload(owner, &hdr)
	if err != nil {
		return err
	}
	size := int(hdr.TotalBytes)
	release, err := n.reserveService(svcShares, owner, size)
	if err != nil {
		return fmt.Errorf("%w: upload of %d bytes refused by the resource manager: %v", ErrBusy, size, err)
	}
	defer release()
	_ = s.SetReadDeadline(time.Now().Add(n.uploadTimeout(size)))
	blob, err := n.readBlob(fr, size)
	if err != nil {
		return err
	}
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
	n.log.Info("stored shares", "model", hdr.Model, "owner", owner, "party", hdr.Party, "version", hdr.Version, "bytes", size)
	return nil
}

// dropShares removes the shares of a drop request: only the owner's own
// upload of exactly this version is dropped.
func (n *Node) dropShares(owner peer.ID, hdr *pb.UploadHeader) error {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	if err := n.store.removeVersion(ctx, owner, hdr.Model, hdr.Version); err != nil {
		return err
	}
	n.log.Info("dropped shares at the owner's request", "model", hdr.Model, "owner", owner, "version", hdr.Version)
	return nil
}

// checkUpload checks an upload header against this holder (checkUploadHeader),
// its store and its roles, and returns the upload's holders.
func (n *Node) checkUpload(owner peer.ID, hdr *pb.UploadHeader) ([]peer.ID, error) {
	holders, err := checkUploadHeader(hdr, n.ID())
	if err != nil {
		return nil, err
	}
	// One version, one share set: weight masks are bound to the shares
	// they were opened against, so a version's shares are never replaced.
	if vs := n.store.versions(owner, hdr.Model); len(vs) > 0 && vs[len(vs)-1] >= hdr.Version {
		return nil, fmt.Errorf("%w: shares of %q version %d are stored; an upload must carry a newer version, got %d",
			errBadRequest, hdr.Model, vs[len(vs)-1], hdr.Version)
	}
	if err := n.cfg.Testing.RefuseUploads; err != nil {
		return nil, err
	}
	if hdr.Mode == discovery.ModeMPC && !n.hasRole(RoleHolder) {
		return nil, fmt.Errorf("%w: this peer is not a holder", errBadRequest)
	}
	if hdr.Mode == discovery.ModePlain && !n.hasRole(RoleHost) {
		return nil, fmt.Errorf("%w: this peer is not a host", errBadRequest)
	}
	return holders, nil
}

// readBlob reads the upload's chunks, exactly size bytes.
func (n *Node) readBlob(fr *frameReader, size int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(min(size, 64<<20))
	for buf.Len() < size {
		var c pb.UploadChunk
		if err := fr.readMsg(&c, maxChunk); err != nil {
			return nil, fmt.Errorf("%w: chunk at %d of %d bytes: %v", errBadRequest, buf.Len(), size, err)
		}
		if buf.Len()+len(c.Data) > size {
			return nil, fmt.Errorf("%w: chunks exceed the announced %d bytes", errBadRequest, size)
		}
		buf.Write(c.Data)
		n.met.bytesRecv.WithLabelValues("shares").Add(float64(len(c.Data)))
	}
	return buf.Bytes(), nil
}
