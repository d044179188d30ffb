package node

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestCandidates(t *testing.T) {
	ai := func(ids ...peer.ID) []peer.AddrInfo {
		out := make([]peer.AddrInfo, len(ids))
		for i, id := range ids {
			out[i] = peer.AddrInfo{ID: id}
		}
		return out
	}
	tests := []struct {
		name    string
		found   []peer.AddrInfo
		exclude []peer.ID
		want    []peer.ID
	}{
		{"none", nil, nil, nil},
		{"self left out", ai("a", "self", "b"), nil, []peer.ID{"a", "b"}},
		{"excluded left out", ai("a", "b", "c"), []peer.ID{"b"}, []peer.ID{"a", "c"}},
		{"repeats left out", ai("a", "b", "a", "b"), nil, []peer.ID{"a", "b"}},
		{"all left out", ai("self", "x"), []peer.ID{"x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []peer.ID
			for _, c := range candidates(tc.found, "self", tc.exclude) {
				got = append(got, c.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("candidates = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHolderOrder(t *testing.T) {
	tests := []struct {
		holders []peer.ID
		want    []int
	}{
		{nil, []int{}},
		{[]peer.ID{"a"}, []int{0}},
		{[]peer.ID{"c", "a", "b"}, []int{1, 2, 0}},
		{[]peer.ID{"a", "b", "c", "d"}, []int{0, 1, 2, 3}},
		{[]peer.ID{"d", "c", "b", "a"}, []int{3, 2, 1, 0}},
	}
	for _, tc := range tests {
		if got := holderOrder(tc.holders); !slices.Equal(got, tc.want) {
			t.Errorf("holderOrder(%v) = %v, want %v", tc.holders, got, tc.want)
		}
	}
}
