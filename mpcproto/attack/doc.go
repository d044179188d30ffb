// Package attack holds adversaries used by tests to show that attacks on
// grid fail; it is never used by the product.
//
// # Self-dealing weight extraction
//
// The engine uses the dealer's material unchecked: the last party's
// explicit words (C = A·B of a matrix triple, r >> f, rho as 0/1, ...) are
// whatever the dealer sent. A client that deals its own session can
// therefore edit them. SelfDeal builds such a session against a
// Linear → ReLU → Linear model with biases (the 4-6-2 MLP of the review, or
// any sizes D-H-O):
//
//   - it deals honestly with dealer.Deal (no weight masks, as a self-dealing
//     client does), then adds δ·2^(2f) to the last party's explicit C words
//     of the first MatMul's triple. The holders' shares of that product then
//     add up to X·W1 + b1 + δ at 2f fractional bits (the engine adds
//     b1 << f to the product before truncating it), so row s, hidden unit k
//     gets δ[s,k] added to its pre-activation: +M forces the unit on (its
//     ReLU passes b1_k + M + x·W1[:,k]), −M forces it off (ReLU gives 0),
//     whatever the secret weights, as long as M > |x·W1[:,k] + b1_k|;
//   - that triple is the first request of the schedule
//     (dealer.Schedule: MatMul, Trunc, Sign for the fused ReLU, MatMul,
//     Trunc), and the MatMul part layout is A, B (random, from the seeds) and
//     C (derived: the last party's explicit words), so C is
//     Explicit[0 : batch·H], row-major [batch, H]: word s·H + k is row s,
//     unit k;
//   - the client's input is a batch of 1 + 2H + H·D rows (37 for 4-6-2):
//     row 0 is x = 0 with every unit off (y = b2); rows 1..H are x = 0 with
//     only unit k on at +M (y = (b1_k + M)·W2[k,:] + b2); rows H+1..2H the
//     same at +2M; then, for each unit k and input i, x = e_i with only unit
//     k on at +M (y = (W1[i,k] + b1_k + M)·W2[k,:] + b2). Session.Rows
//     describes every row.
//
// Session.Recover solves the outputs: b2 = y_0, W2[k,:] = (y(2M) − y(M))/M,
// then b1_k (from 2·y(M) − y(2M) − b2 = b1_k·W2[k,:]) and W1[i,k] (from
// y(e_i, M) − y(M) = W1[i,k]·W2[k,:]) by projecting on W2[k,:]. With the
// default M = 2^12 and 16 fractional bits the error is a few units in the
// last place of the output divided by |W2[k,:]|: about 1e-4 for a random
// 4-6-2 MLP (below 8e-4 over 300 random models). It only needs the
// reconstructed outputs, so it is indifferent to how holders
// re-randomise their output shares. Against honest bundles (a dealer the
// client does not control) every row is an ordinary inference: the rows
// with +M and +2M give the same output, Recover finds W2 = 0, and b1, W1
// are unidentifiable (reported as 0), far from the true weights.
//
// RunHolders runs the holders in process over a transport.Network with
// given bundles (the control: holders that accept a client's bundles), and
// MaxAbsError compares recovered weights with the true ones. Tests over
// real hosts (node/) use Session.Input, Session.Bundles and Session.Recover.
package attack
