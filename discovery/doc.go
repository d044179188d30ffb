// Package discovery tells a grid node which models exist, who owns them and
// which peers serve which role, with no central gateway.
//
// A model is described by a Manifest signed by its owner's libp2p key into
// a signed envelope (Seal); Open verifies one. Manifests spread three ways:
// a gossipsub topic (Topic), DHT records under DHTKey(id) in a private DHT
// (prefix DHTPrefix), and a catalog protocol (SyncProtocol) that a node
// uses to catch up with each peer it meets. Every node keeps a registry of
// the newest verified manifest per ID and applies the same rules to all
// sources: the first signer of a name owns it, versions only move forward,
// only the owner can unpublish (a tombstone). Refusals are logged and
// counted (Metrics).
//
// # Usage
//
//  1. New(ctx, Config{Host, Server, Bootstrap, Datastore, Logger, Metrics})
//     on a libp2p host: daemons set Server (DHT server mode), one-shot CLI
//     peers leave it false. Only one Discovery may run on a host.
//  2. WaitReady(ctx) before using the network: it waits for a DHT peer and
//     pulls the peers' catalogs, so Models is complete when it returns.
//  3. Publish(ctx, m, sk) / Unpublish(ctx, id, sk) with the owner's key;
//     Models() lists live manifests, Lookup(ctx, id) asks the DHT when the
//     registry does not know id, Latest(id) shows tombstones too.
//  4. Advertise(ctx, role) after WaitReady; FindPeers(ctx, role, max).
//  5. Close() before closing the host.
package discovery
