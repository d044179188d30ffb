// Package engine is the online protocol of grid's secure inference: one
// party (a holder of weight shares) evaluating a plan on additive shares
// over Z_2^64 with the other parties, through a transport.Transport, using
// correlated randomness from a dealer (package dealer).
//
// Security model: semi-honest parties, any N >= 2, any N-1 of them may
// collude; the dealer must not collude with a holder. With three or more
// parties comparisons (ReLU, MaxPool, piecewise ops) run a carry circuit
// on XOR-shared bits (compare.go, max.go); with exactly two, ReLU and
// MaxPool take the dealer's sign gates instead (while their keys fit,
// dealer.UsesGates), DCF keys by function secret sharing (gate.go, package
// fss): one round per ReLU, fused with the truncation of the product
// before it. Every value a party
// receives online is masked by fresh uniform dealer randomness, and every
// output share a holder returns is re-randomised with a fresh sharing of
// zero agreed among the holders only (rerand.go), so the client, even
// colluding with the dealer, learns the output and nothing else from the
// shares. The privacy tests: TestPrivacyOpenedValuesUniform (first-order
// byte statistics), TestPrivacySecondOrder (constant bits; words and
// pairs of words a secret determines, over many mask sets, many queries
// on one mask set and the last holder's explicit dealer words; the
// client's view of the output shares with the dealer's knowledge) and,
// with the gridfault build tag, TestMaskProvenance (every random word of
// the dealer masks exactly one opened value) and TestPrivacyFaultsDetected
// (deliberate faults, SetFaults here and dealer.SetFaults, that keep the
// outputs correct are caught):
//
//	go test ./mpcproto/... && go test -tags gridfault ./mpcproto/...
//
// # A session, as the network layer runs it
//
//  1. The model owner encodes every weight (fixed.Encoding.Encode) and
//     splits it among the N holders (share.Split); holder i keeps share i.
//  2. Optionally, once per (model, dealer): the dealer makes weight masks
//     (dealer.NewMasks) and sends mask bundle i to holder i; the holders run
//     OpenMasks together and keep the returned WeightMasks with their
//     shares (WeightMasks.Marshal / UnmarshalWeightMasks; the dealer keeps
//     its Masks with Masks.Marshal / dealer.UnmarshalMasks). Later queries
//     then open only activations.
//  3. The client encodes and splits its input and sends share i to holder
//     i; the dealer deals for (plan, batch, N) — dealer.Deal, or
//     dealer.DealMasked with masks — and sends bundle i to holder i.
//  4. Every holder calls RunParty with the same Config (plan, batch,
//     encoding, its own WeightMasks or nil), its transport, weight shares,
//     input share and bundle, and sends the returned (re-randomised) output
//     share to the client, which adds the shares (share.Reconstruct) and
//     decodes them.
//
// RunParty expands the bundle first (offline work, Stats.Offline), then
// evaluates the plan node by node; every op is vectorised over the batch
// and the layer, so the number of rounds depends on the plan's depth only.
// Errors during the online phase are *ProtocolError values naming the
// party, node, op, round and peer.
//
// # In one process
//
// RunLocal runs a whole session with N parties over an in-memory network;
// NewLocal + Local.Infer keep a shared model for many queries (with
// WithWeightMasks, the masks are opened once). Both are what tests and
// benchmarks use; the holders inside them run RunParty exactly as over a
// network.
//
// docs/ARCHITECTURE.md ("Engine") lists the protocols, the rounds and bytes
// of every op and the error bounds.
package engine
