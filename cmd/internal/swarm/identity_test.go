package swarm

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestDeriveKey(t *testing.T) {
	_, a, err := DeriveKey(1, "node0")
	if err != nil {
		t.Fatal(err)
	}
	_, a2, _ := DeriveKey(1, "node0")
	_, b, _ := DeriveKey(1, "node1")
	_, c, _ := DeriveKey(2, "node0")
	if a != a2 {
		t.Fatalf("same seed and name gave %s and %s", a, a2)
	}
	if a == b || a == c {
		t.Fatalf("different names or seeds gave the same ID %s", a)
	}
}

func TestSetIdentity(t *testing.T) {
	repo := t.TempDir()
	initial := `{"Identity":{"PeerID":"old","PrivKey":"b2xk"},"Addresses":{"Listen":["/ip4/127.0.0.1/tcp/0"],"API":"127.0.0.1:0"},"Roles":["holder"],"Future":{"x":1}}`
	path := filepath.Join(repo, configFile)
	if err := os.WriteFile(path, []byte(initial), 0o600); err != nil {
		t.Fatal(err)
	}
	sk, want, err := DeriveKey(5, "owner")
	if err != nil {
		t.Fatal(err)
	}
	got, err := SetIdentity(repo, sk)
	if err != nil || got != want {
		t.Fatalf("SetIdentity = %s, %v; want %s", got, err, want)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, %v; want 0600", st.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	var doc struct {
		Identity struct{ PeerID, PrivKey string }
		Roles    []string
		Future   map[string]int
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Identity.PeerID != want.String() || len(doc.Roles) != 1 || doc.Future["x"] != 1 {
		t.Fatalf("rewritten config lost or mangled fields: %s", b)
	}
	raw, err := base64.StdEncoding.DecodeString(doc.Identity.PrivKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(k); id != want {
		t.Fatalf("stored key is %s, want %s", id, want)
	}
}

func TestRewriteIdentityErrors(t *testing.T) {
	sk, _, _ := DeriveKey(1, "x")
	for _, tt := range []struct{ in, want string }{
		{`not json`, "decode"},
		{`{}`, "no Identity"},
		{`{"Identity":5}`, "not an object"},
		{`{"Identity":{}}`, "no PrivKey"},
		{strings.Repeat(" ", maxConfigSize+1), "over"},
	} {
		if _, _, err := rewriteIdentity([]byte(tt.in), sk); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("rewriteIdentity(%.20q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := SetIdentity(t.TempDir(), sk); err == nil {
		t.Error("SetIdentity of a repo without config succeeded")
	}
}

func FuzzRewriteIdentity(f *testing.F) {
	f.Add([]byte(`{"Identity":{"PeerID":"a","PrivKey":"b"},"Roles":["holder"]}`))
	f.Add([]byte(`{"Identity":null}`))
	sk, want, _ := DeriveKey(1, "fuzz")
	f.Fuzz(func(t *testing.T, b []byte) {
		out, id, err := rewriteIdentity(b, sk)
		if err != nil {
			return
		}
		if id != want {
			t.Fatalf("id %s, want %s", id, want)
		}
		if _, _, err := rewriteIdentity(out, sk); err != nil {
			t.Fatalf("rewritten config does not rewrite again: %v", err)
		}
	})
}
