// Package node is the grid peer: a libp2p host (TCP and QUIC, Noise/TLS,
// resource and connection managers) with discovery (private Kademlia DHT and
// signed manifests on gossipsub), a share store in the repo dir, and one
// stream protocol per job:
//
//	/grid/shares/1.0.0  owner -> holder: upload a holder's weight shares
//	/grid/infer/1.0.0   client -> holder: open a session, get an output share
//	/grid/dealer/1.0.0  client -> dealer: deal a session; dealer -> holder: a bundle
//	/grid/mpc/1.0.0     holder <-> holder: the engine's rounds (one stream per pair)
//	/grid/plain/1.0.0   client -> host: plaintext query of a plain-mode model
//
// Every message is a uvarint-length-delimited protobuf (package pb), every
// read is size-capped and under a deadline, and every session has a timeout.
//
// # Usage
//
//  1. Init(repoDir, bootstrap) once: an ed25519 identity and a config file
//     (mode 0600). LoadConfig(repoDir) reads it back; adjust the Config.
//  2. New(ctx, cfg) opens the repo (a daemon takes repo.lock; a Client node
//     only reads its identity), the store, the host and discovery, and
//     serves the protocols of cfg.Roles. Close releases everything.
//  3. An owner calls Publish: the weights are encoded in fixed point, split
//     into additive shares, one per holder (holders found through discovery,
//     never the owner), uploaded, stored atomically by each holder, and only
//     then the signed manifest is announced. Unpublish writes a tombstone;
//     holders drop their shares when they see it.
//  4. A client calls Infer: it checks the input against the plan before
//     sending anything (ErrBadInput), shares it, opens the session with
//     every holder (each checks the manifest, its store and the holder list
//     and may refuse: ErrBusy, ErrRemoteInferenceDisabled, ErrDamaged,
//     ErrUnknownModel), has the dealer (or itself) deal the session's
//     bundles to the holders, and reconstructs the holders' output shares.
//     A failure names the peer at fault (*PeerError). Infer is Model (the
//     manifest and its verified plan), tensorio.Fit and Query: a caller
//     that fits the input itself, like grid infer, calls those.
//  5. Tests and tools start nodes on loopback with DefaultLocalConfig, or
//     a whole cluster with package nodetest; Config.Timing and
//     Config.Testing hold the waits and the test hooks.
package node
