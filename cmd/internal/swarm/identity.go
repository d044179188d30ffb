package swarm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// configFile is the name of a grid repo's config file (node.ConfigFile).
const configFile = "config"

// maxConfigSize caps the repo config file this package rewrites.
const maxConfigSize = 1 << 20

// DeriveKey returns the ed25519 identity of the swarm member called name
// under seed: the same seed and name always give the same peer ID, so runs
// are reproducible (testground and libp2p's interop plans seed keys from the
// instance index the same way).
func DeriveKey(seed int64, name string) (crypto.PrivKey, peer.ID, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "grid-swarm identity v1|%d|%s", seed, name))
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(sum[:]))
	if err != nil {
		return nil, "", fmt.Errorf("derive key %s: %w", name, err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("derive key %s: %w", name, err)
	}
	return sk, id, nil
}

// SetIdentity replaces the identity in the config file of a repo made by
// `grid init` with sk, keeping every other field as init wrote it, and
// returns the new peer ID. The file stays mode 0600.
//
// grid init has no seed flag; the swarm writes the identity into the
// node's documented config layout ({"Identity": {"PeerID", "PrivKey"}},
// PrivKey the base64 of the libp2p protobuf key) instead.
func SetIdentity(repo string, sk crypto.PrivKey) (peer.ID, error) {
	path := filepath.Join(repo, configFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("set identity: %w", err)
	}
	out, id, err := rewriteIdentity(b, sk)
	if err != nil {
		return "", fmt.Errorf("set identity in %s: %w", path, err)
	}
	tmp := path + ".swarm.tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return "", fmt.Errorf("set identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("set identity: %w", err)
	}
	return id, nil
}

// rewriteIdentity returns config with its Identity replaced by sk's.
func rewriteIdentity(config []byte, sk crypto.PrivKey) ([]byte, peer.ID, error) {
	if len(config) > maxConfigSize {
		return nil, "", fmt.Errorf("config is %d bytes, over %d", len(config), maxConfigSize)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(config, &doc); err != nil {
		return nil, "", fmt.Errorf("decode config: %w", err)
	}
	var ident map[string]json.RawMessage
	raw, ok := doc["Identity"]
	if !ok {
		return nil, "", errors.New("config has no Identity object")
	}
	if err := json.Unmarshal(raw, &ident); err != nil || ident == nil {
		return nil, "", errors.New("config's Identity is not an object")
	}
	if _, ok := ident["PrivKey"]; !ok {
		return nil, "", errors.New("config's Identity has no PrivKey")
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("peer id: %w", err)
	}
	kb, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("marshal key: %w", err)
	}
	ident["PeerID"], _ = json.Marshal(id.String())
	ident["PrivKey"], _ = json.Marshal(base64.StdEncoding.EncodeToString(kb))
	if doc["Identity"], err = json.Marshal(ident); err != nil {
		return nil, "", fmt.Errorf("encode identity: %w", err)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encode config: %w", err)
	}
	return append(out, '\n'), id, nil
}
