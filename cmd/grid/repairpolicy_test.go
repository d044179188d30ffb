package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestParseRepairPolicy(t *testing.T) {
	ids := make([]string, 17)
	for i := range ids {
		_, pk, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pk)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id.String()
	}
	cases := []struct {
		name      string
		f         publishFlags
		wantErr   string // "" = valid
		wantCands int
	}{
		{name: "none", f: publishFlags{tolerate: 0}},
		{name: "grace", f: publishFlags{tolerate: 1, repairGrace: time.Hour}},
		{name: "candidates", f: publishFlags{tolerate: 1, repairGrace: time.Hour, repairCandidates: ids[0] + ", " + ids[1]}, wantCands: 2},
		{name: "negative", f: publishFlags{tolerate: 1, repairGrace: -time.Second}, wantErr: ">= 0"},
		{name: "no tolerate", f: publishFlags{repairGrace: time.Hour}, wantErr: "--tolerate 1 or more"},
		{name: "plain", f: publishFlags{plain: true, tolerate: 1, repairGrace: time.Hour}, wantErr: "--tolerate 1 or more"},
		{name: "candidates without grace", f: publishFlags{tolerate: 1, repairCandidates: ids[0]}, wantErr: "needs --repair-grace"},
		{name: "bad peer", f: publishFlags{tolerate: 1, repairGrace: time.Hour, repairCandidates: "nope"}, wantErr: "not a peer ID"},
		{name: "twice", f: publishFlags{tolerate: 1, repairGrace: time.Hour, repairCandidates: ids[0] + "," + ids[0]}, wantErr: "named twice"},
		{name: "too many", f: publishFlags{tolerate: 1, repairGrace: time.Hour, repairCandidates: strings.Join(ids, ",")}, wantErr: "at most 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := parseRepairPolicy(&c.f)
			if c.wantErr == "" {
				if err != nil || p.Grace != c.f.repairGrace || len(p.Candidates) != c.wantCands {
					t.Fatalf("policy %+v, err %v", p, err)
				}
				return
			}
			var ee *exitError
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("err %v, want a usage error containing %q", err, c.wantErr)
			}
		})
	}
}
