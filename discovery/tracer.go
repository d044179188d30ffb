package discovery

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer is a gossipsub RawTracer that tracks this node's mesh peers on
// the manifest topic, so WaitReady can wait for the mesh (a message
// forwarded before a peer is grafted never reaches that peer by gossip).
type meshTracer struct {
	mu    sync.Mutex
	peers map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer { return &meshTracer{peers: make(map[peer.ID]struct{})} }

// size is the number of mesh peers on the manifest topic that are still
// connected (gossipsub drops a disconnected peer without a Prune event).
func (t *meshTracer) size(connected func(peer.ID) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for p := range t.peers {
		if connected(p) {
			n++
		} else {
			delete(t.peers, p)
		}
	}
	return n
}

// Graft implements pubsub.RawTracer.
func (t *meshTracer) Graft(p peer.ID, topic string) {
	if topic != Topic {
		return
	}
	t.mu.Lock()
	t.peers[p] = struct{}{}
	t.mu.Unlock()
}

// Prune implements pubsub.RawTracer.
func (t *meshTracer) Prune(p peer.ID, topic string) {
	if topic != Topic {
		return
	}
	t.mu.Lock()
	delete(t.peers, p)
	t.mu.Unlock()
}

// The other RawTracer events are not needed.

func (t *meshTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (t *meshTracer) Join(string)                                          {}
func (t *meshTracer) Leave(string)                                         {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (t *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
