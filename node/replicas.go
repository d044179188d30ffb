package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Replicated additive sharing (PublishOptions.Tolerate, manifest Tolerate
// and Replicas): the weights are split into S additive shares and share i
// is stored on every holder in Replicas[i] (at least F+1 of them). A
// session picks one live holder per share (the replica choice: a list of
// S peers, carried as InferRequest.Holders and DealRequest.Holders); the
// session's parties are the distinct peers of that list, in order of first
// appearance, and a party acting for several shares uses their sum as its
// weight share (still an additive sharing of W over the parties). The
// engine is unchanged: it runs with the parties. Without replication the
// replica choice is the manifest's holder list and the parties are the
// holders, as before.

// ErrNoHolder: some share of a replicated model has no reachable holder
// (more holders are down than the model tolerates).
var ErrNoHolder = errors.New("no live holder of a share")

// probeTimeout bounds the liveness probe of one holder (and so what a dead
// holder costs a query).
const probeTimeout = 2 * time.Second

// sessionParties derives the session's parties from a replica choice (one
// peer per share): the distinct peers in order of first appearance, and
// the shares each acts for (ascending).
func sessionParties(reps []peer.ID) (parties []peer.ID, shares [][]int) {
	for i, p := range reps {
		k := slices.Index(parties, p)
		if k < 0 {
			parties = append(parties, p)
			shares = append(shares, nil)
			k = len(parties) - 1
		}
		shares[k] = append(shares[k], i)
	}
	return parties, shares
}

// partitionKey names how a session's shares are grouped into parties
// ("0,1|2|3"): the weight masks of a dealer are per partition, so every
// party slot always holds the same shares for one mask set.
func partitionKey(shares [][]int) string {
	parts := make([]string, len(shares))
	for i, ss := range shares {
		s := make([]string, len(ss))
		for k, x := range ss {
			s[k] = strconv.Itoa(x)
		}
		parts[i] = strings.Join(s, ",")
	}
	return strings.Join(parts, "|")
}

// decodeReplicas parses a session's replica choice: peer IDs, repeated
// only when the model's shares are replicated (the caller checks it
// against the manifest with checkReplicaChoice).
func decodeReplicas(raw [][]byte) ([]peer.ID, error) {
	if len(raw) > discovery.MaxShares {
		return nil, fmt.Errorf("%w: %d shares, limit %d", errBadRequest, len(raw), discovery.MaxShares)
	}
	out := make([]peer.ID, len(raw))
	for i, b := range raw {
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: holder of share %d: %v", errBadRequest, i, err)
		}
		out[i] = id
	}
	return out, nil
}

// checkReplicaChoice checks that reps names, for every share of the
// manifest, one of that share's holders, and that the session has at
// least two parties. Without replication that is the holder list itself.
func checkReplicaChoice(m *discovery.Manifest, reps []peer.ID) error {
	assign := m.ShareHolders()
	if len(reps) != len(assign) {
		return badRequest("the session's holders do not match model %q's manifest: %d share holders named, the model has %d shares", m.ID, len(reps), len(assign))
	}
	for i, p := range reps {
		ok := false
		for _, j := range assign[i] {
			if j < len(m.Holders) && m.Holders[j] == p {
				ok = true
			}
		}
		if !ok {
			return badRequest("the session's holders do not match model %q's manifest: %s does not hold share %d", m.ID, p, i)
		}
	}
	if parties, _ := sessionParties(reps); len(parties) < 2 {
		return badRequest("the session of model %q has %d party", m.ID, len(parties))
	}
	return nil
}

// chooseReplicas picks one live holder per share, never one in dead: the
// least loaded live replica of each share (ties: the first listed), so
// the work spreads over the live holders. It fails naming the first share
// with no live replica.
func chooseReplicas(m *discovery.Manifest, live func(peer.ID) bool) ([]peer.ID, error) {
	assign := m.ShareHolders()
	load := map[peer.ID]int{}
	reps := make([]peer.ID, len(assign))
	for i, hs := range assign {
		var best peer.ID
		for _, j := range hs {
			p := m.Holders[j]
			if !live(p) {
				continue
			}
			if best == "" || load[p] < load[best] {
				best = p
			}
		}
		if best == "" {
			return nil, fmt.Errorf("%w: no live holder of share %d of model %q (its holders: %s)", ErrNoHolder, i, m.ID, peerList(sharePeers(m, hs)))
		}
		reps[i] = best
		load[best]++
	}
	return reps, nil
}

func sharePeers(m *discovery.Manifest, hs []int) []peer.ID {
	out := make([]peer.ID, 0, len(hs))
	for _, j := range hs {
		out = append(out, m.Holders[j])
	}
	return out
}

// probeHolders tells which of peers this node can reach now: connected
// already, or dialled (known addresses, else the DHT) within probeTimeout,
// all at once. With enough (a non-nil, true) it returns early, once
// probeGrace has passed and the peers found live are enough: a dead
// holder then costs a query probeGrace, not probeTimeout; the peers not
// answered by then count as down (their probes are dropped with ctx).
func (n *Node) probeHolders(ctx context.Context, peers []peer.ID, enough func(live map[peer.ID]bool) bool) map[peer.ID]bool {
	type probe struct {
		p  peer.ID
		ok bool
	}
	results := make(chan probe, len(peers))
	for _, p := range peers {
		go func() {
			ok := p == n.ID() || n.connected(p)
			if !ok {
				cctx, cancel := context.WithTimeout(ctx, probeTimeout)
				ok = n.ensureAddrs(cctx, p) == nil
				cancel()
			}
			results <- probe{p, ok}
		}()
	}
	live := make(map[peer.ID]bool, len(peers))
	grace := time.NewTimer(probeGrace)
	defer grace.Stop()
	graceOver := false
	for pending := len(peers); pending > 0; {
		if graceOver && enough != nil && enough(live) {
			break
		}
		select {
		case r := <-results:
			pending--
			live[r.p] = r.ok
		case <-grace.C:
			graceOver = true
		}
	}
	return live
}

// probeGrace is how long probeHolders waits for every holder before it
// settles for enough live ones.
const probeGrace = 100 * time.Millisecond

// HolderStatus is one holder of a model as Status sees it.
type HolderStatus struct {
	Peer   peer.ID `json:"peer"`
	Shares []int   `json:"shares"` // the shares it holds
	Live   bool    `json:"live"`
}

// ShareStatus is one additive share of a model as Status sees it.
type ShareStatus struct {
	Share   int       `json:"share"`
	Holders []peer.ID `json:"holders"`
	Live    int       `json:"live"` // how many of its holders are reachable
}

// ModelStatus is Status's answer.
type ModelStatus struct {
	Model    string         `json:"model"`
	Version  uint64         `json:"version"`
	Tolerate int            `json:"tolerate"`
	Private  int            `json:"collusion_threshold"` // holders that may collude and learn nothing
	Holders  []HolderStatus `json:"holders"`
	Shares   []ShareStatus  `json:"shares"`
	// Answers tells whether every share has a live holder (the model can
	// answer queries now).
	Answers bool `json:"answers"`
}

// Status probes the holders of model id (probeTimeout each, all at once)
// and reports each share's holders and whether they are reachable.
func (n *Node) Status(ctx context.Context, id string) (*ModelStatus, error) {
	m, err := n.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("status of %q: %w", id, err)
	}
	live := n.probeHolders(ctx, m.Holders, nil)
	st := &ModelStatus{Model: m.ID, Version: m.Version, Tolerate: m.Tolerate, Private: m.CollusionThreshold(), Answers: true}
	for j, h := range m.Holders {
		st.Holders = append(st.Holders, HolderStatus{Peer: h, Shares: m.HeldShares(j), Live: live[h]})
	}
	for i, hs := range m.ShareHolders() {
		ss := ShareStatus{Share: i, Holders: sharePeers(m, hs)}
		for _, p := range ss.Holders {
			if live[p] {
				ss.Live++
			}
		}
		if ss.Live == 0 {
			st.Answers = false
		}
		st.Shares = append(st.Shares, ss)
	}
	return st, nil
}

// replicaName is the key of share i's weight name in a replicated
// holder's WeightSet blob: the holder stores every share it holds.
func replicaName(i int, name string) string { return strconv.Itoa(i) + "/" + name }

// sumShares returns a party's weight share for a session: the sum of the
// stored shares it acts for (a replicated model), or the stored weights
// themselves (one share per holder). The digest names the result (the
// mask seeds a holder opens are bound to it): the same for every replica
// of the same shares.
func sumShares(m *discovery.Manifest, names []string, stored map[string]*tensor.Dense[uint64], shares []int) (map[string]*tensor.Dense[uint64], string, error) {
	if !m.Replicated() {
		return stored, "", nil
	}
	out := make(map[string]*tensor.Dense[uint64], len(names))
	h := sha256.New()
	for _, name := range names {
		var sum *tensor.Dense[uint64]
		for _, i := range shares {
			t := stored[replicaName(i, name)]
			if t == nil {
				return nil, "", fmt.Errorf("%w: share %d of weight %q is not stored here", ErrUnknownModel, i, name)
			}
			if sum == nil {
				sum = &tensor.Dense[uint64]{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
				continue
			}
			if len(t.Data) != len(sum.Data) {
				return nil, "", fmt.Errorf("%w: shares of weight %q differ in size", ErrDamaged, name)
			}
			for k, v := range t.Data {
				sum.Data[k] += v
			}
		}
		h.Write([]byte(name))
		var b [8]byte
		for _, v := range sum.Data {
			binary.LittleEndian.PutUint64(b[:], v)
			h.Write(b[:])
		}
		out[name] = sum
	}
	return out, hex.EncodeToString(h.Sum(nil)), nil
}
