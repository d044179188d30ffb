package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/gridmpc/grid/mpcproto/dealer"
	"github.com/gridmpc/grid/mpcproto/tensor"
	"github.com/gridmpc/grid/mpcproto/transport"
)

// primitiveCase runs one protocol primitive on zero shares of size
// elements, with the material it asks for.
type primitiveCase struct {
	name  string
	sched []dealer.Request
	run   func(p *party) error
}

// primitiveCases are the primitives of a session of n parties: with two,
// the comparisons take sign gates (dealer.UsesFSS).
func primitiveCases(size, n int) []primitiveCase {
	zeros := func() []uint64 { return make([]uint64, size) }
	matmul := dealer.Request{Kind: dealer.KindMatMul, X: []int{size, 2}, Y: []int{2, 3}}
	trunc := dealer.Request{Kind: dealer.KindTrunc, N: size}
	sign := dealer.Request{Kind: dealer.KindSign, N: size}
	if dealer.UsesFSS(n) {
		gate := dealer.Request{Kind: dealer.KindReluGate, N: size}
		return []primitiveCase{
			{"relu gate", []dealer.Request{gate}, func(p *party) error { _, err := p.relu(zeros()); return err }},
			{"truncRelu gate", []dealer.Request{{Kind: dealer.KindTruncReluGate, N: size}}, func(p *party) error {
				_, _, err := p.truncRelu(zeros())
				return err
			}},
			{"max of 4 by gates", []dealer.Request{{Kind: dealer.KindReluGate, N: 2 * size}, gate}, func(p *party) error {
				_, err := p.maxTree(make([]uint64, 4*size), 4, size)
				return err
			}},
		}
	}
	return []primitiveCase{
		{"bilinear", []dealer.Request{matmul}, func(p *party) error {
			_, err := p.bilinear(matmul, tensor.New[uint64](size, 2), tensor.New[uint64](2, 3))
			return err
		}},
		{"trunc", []dealer.Request{trunc}, func(p *party) error { _, err := p.trunc(zeros()); return err }},
		{"relu", []dealer.Request{sign}, func(p *party) error { _, err := p.relu(zeros()); return err }},
		{"truncRelu", []dealer.Request{trunc, sign}, func(p *party) error { _, _, err := p.truncRelu(zeros()); return err }},
		{"max of 4", []dealer.Request{{Kind: dealer.KindMax, N: size, K: 4}}, func(p *party) error {
			_, err := p.maxWindows(make([]uint64, 4*size), 4, size)
			return err
		}},
	}
}

// TestPrimitivesFail: a primitive fails, on every party, when its
// material is missing, and on every party that receives it (naming the
// round and the sender) when a peer's message of any of its rounds is
// malformed.
func TestPrimitivesFail(t *testing.T) {
	const size = 5
	for _, n := range []int{2, 3} {
		primitivesFail(t, n, size)
	}
}

// primitivesFail is TestPrimitivesFail for n parties.
func primitivesFail(t *testing.T, n, size int) {
	for _, pc := range primitiveCases(size, n) {
		ps := runParties(t, n, pc.sched, pc.run)
		rounds := ps[0].round
		for cut := range pc.sched {
			_, errs := runPartiesOn(t, transport.NewNetwork(n), pc.sched[:cut], pc.run)
			for i, err := range errs {
				if err == nil || !strings.Contains(err.Error(), "material exhausted") {
					t.Errorf("%s with %d of %d requests: party %d: got %v", pc.name, cut, len(pc.sched), i, err)
				}
			}
		}
		for r := 1; r <= rounds; r++ {
			nw := transport.NewNetwork(n)
			nw.SetIntercept(faultAt(1, r, func(m []byte) []byte { return m[:len(m)-8] }))
			_, errs := runPartiesOn(t, nw, pc.sched, pc.run)
			found := false // a receiver names the round and the sender
			for i, err := range errs {
				var pe *ProtocolError
				if err == nil && i != 1 { // party 1 may finish a last round
					t.Errorf("%s, round %d cut short: party %d succeeded", pc.name, r, i)
				} else if errors.As(err, &pe) && errors.Is(err, errBadMessage) && pe.Round == r && pe.Peer == 1 {
					found = true
				}
			}
			if !found {
				t.Errorf("%s, round %d of %d cut short: no party reports party 1's bad message: %v", pc.name, r, rounds, errs)
			}
		}
	}
}
