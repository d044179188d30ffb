package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// The roles a daemon can take.
const (
	// RoleHolder stores weight shares and runs MPC sessions.
	RoleHolder = "holder"
	// RoleDealer deals the correlated randomness of sessions it is asked for.
	RoleDealer = "dealer"
	// RoleHost serves plain-mode (non-MPC) models.
	RoleHost = "host"
)

// AllRoles lists every role, the daemon default.
var AllRoles = []string{RoleHolder, RoleDealer, RoleHost}

// Files and directories of a repo dir.
const (
	// ConfigFile holds the node's JSON config, including its private key
	// (file mode 0600).
	ConfigFile = "config"
	// DatastoreDir is the pebble datastore (shares, manifests, DHT records).
	DatastoreDir = "datastore"
	// LockFile is held (flock) by the daemon that uses the repo.
	LockFile = "repo.lock"
	// APIFile holds the running daemon's HTTP API address.
	APIFile = "api"
)

// Config configures a Node. Build it with DefaultConfig or LoadConfig and
// check it with Validate (New does).
type Config struct {
	// RepoDir is the node's repo dir: config file, datastore and lock. A
	// Client node reads only its identity there and keeps no store.
	RepoDir string
	// Listen are the multiaddrs to listen on (loopback by default).
	Listen []string
	// Announce, when set, are the addresses announced to other peers
	// instead of the listen addresses (e.g. behind a proxy).
	Announce []string
	// Bootstrap are peers to connect to at start, multiaddrs with /p2p/.
	Bootstrap []string
	// Roles are the services this node offers: "holder", "dealer", "host",
	// and "relay" (RoleRelay, never a default).
	Roles []string
	// NAT turns on go-libp2p's NAT tools (natOptions): AutoNAT v2, the
	// circuit relay v2 client, hole punching, port mapping. The default
	// profile sets it; tests and the test profile do not.
	NAT bool
	// Client makes a one-shot peer: DHT client mode, no roles, no stream
	// handlers, no repo lock and an in-memory store.
	Client bool
	// APIAddr is the host:port of the local HTTP API and Prometheus
	// metrics ("" = none).
	APIAddr string
	// Web, when set, is served by the HTTP API at every path the API
	// itself does not serve: the browser page ("/") and its ES module
	// ("/grid.js") of cmd/grid/web.
	Web http.Handler
	// Shutdown, when set, is called by the HTTP API's /api/v0/shutdown
	// (POST; "grid shutdown"): the daemon stops as on SIGTERM.
	Shutdown func()
	// SessionTimeout bounds a whole inference session, on every party.
	SessionTimeout time.Duration
	// MaxSessions is the number of sessions a holder or host serves at once;
	// beyond it, requests are refused with ErrBusy.
	MaxSessions int
	// Logger receives structured logs (slog.Default() if nil).
	Logger *slog.Logger
	// Timing holds the node's waits and background intervals
	// (DefaultTiming).
	Timing Timing
	// Testing holds hooks for tests; its zero value, no hook, is what
	// daemons run.
	Testing Testing

	// identity is the private key, loaded from the repo's config file.
	identity crypto.PrivKey
}

// Timing are a node's waits and background intervals. DefaultTiming's suit
// daemons; tests change them through Config.Timing.
type Timing struct {
	// BlameGrace is how long a client waits, after a holder's failure, for
	// the other holders' reports before it tears the session down.
	BlameGrace time.Duration
	// DealerWait bounds how long Publish looks for advertised dealers
	// before it publishes without any (a just-started dealer's provider
	// record may be in flight).
	DealerWait time.Duration
	// PeerWait bounds how long Publish waits for enough peers of a role to
	// be advertised.
	PeerWait time.Duration
	// TombstoneSweep is how often a holder compares its whole store with
	// the manifests it knows even without a registry change (a safety net:
	// shares that arrive after their tombstone). Changes are acted on at
	// once.
	TombstoneSweep time.Duration
	// AdvertiseInterval is how often roles are re-advertised, so that peers
	// that joined later (and closer to the role's key) learn them.
	AdvertiseInterval time.Duration
}

// DefaultTiming returns the daemon timing: a 500 ms blame grace, 2 s for
// dealers and 5 s for peers to be found, a 30 s tombstone sweep and role
// advertisement.
func DefaultTiming() Timing {
	return Timing{
		BlameGrace:        500 * time.Millisecond,
		DealerWait:        2 * time.Second,
		PeerWait:          5 * time.Second,
		TombstoneSweep:    30 * time.Second,
		AdvertiseInterval: 30 * time.Second,
	}
}

// Testing are hooks for tests, after hashicorp/raft's testing.go: they are
// called from the node's own goroutines, and are all nil in production.
type Testing struct {
	// OnHolderRun is called in a holder's session once the dealer's bundle
	// arrived, before the holders' mesh is built, with the session's
	// context (done when the session ends).
	OnHolderRun func(ctx context.Context)
	// Record sees every payload this node receives as a holder: "shares"
	// (its weight share blob), "infer" (its input share), "dealer" (its
	// bundle), "mpc" (each frame from another holder).
	Record func(kind string, data []byte)
	// RefuseUploads, when set, makes this holder refuse uploads with it.
	RefuseUploads error
}

// DefaultConfig returns the daemon defaults: loopback TCP and WebSockets
// (for browsers) on free ports, every role, a 30 s session timeout, 64
// concurrent sessions and DefaultTiming.
func DefaultConfig() Config {
	return Config{
		Listen:         []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"},
		Roles:          slices.Clone(AllRoles),
		SessionTimeout: 30 * time.Second,
		MaxSessions:    64,
		Timing:         DefaultTiming(),
	}
}

// DefaultLocalConfig returns the config of a node on this machine's
// loopback, for tests, grid demo and grid-load (after memberlist's
// DefaultLocalConfig): the defaults in repoDir, listening on 127.0.0.1 TCP
// and WebSockets on free ports, with no HTTP API and no bootstrap peer.
// New reads the identity from repoDir, which Init must have made.
func DefaultLocalConfig(repoDir string) Config {
	c := DefaultConfig()
	c.RepoDir = repoDir
	return c
}

// Validate checks every field; errors name the field at fault.
func (c Config) Validate() error {
	if c.RepoDir == "" {
		return errors.New("config: RepoDir is empty")
	}
	for i, a := range c.Listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("config: Listen[%d] %q: %w", i, a, err)
		}
	}
	for i, a := range c.Announce {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("config: Announce[%d] %q: %w", i, a, err)
		}
	}
	for i, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return fmt.Errorf("config: Bootstrap[%d] %q (want a multiaddr ending in /p2p/PEER): %w", i, a, err)
		}
	}
	for i, r := range c.Roles {
		if !slices.Contains(validRoles, r) {
			return fmt.Errorf("config: Roles[%d] %q is not one of %v", i, r, validRoles)
		}
	}
	if c.Client && len(c.Roles) > 0 {
		return fmt.Errorf("config: Roles %v: a Client node takes no roles", c.Roles)
	}
	if c.APIAddr != "" {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			return fmt.Errorf("config: APIAddr %q: %w", c.APIAddr, err)
		}
	}
	if c.SessionTimeout <= 0 {
		return fmt.Errorf("config: SessionTimeout %v must be positive", c.SessionTimeout)
	}
	if c.MaxSessions <= 0 {
		return fmt.Errorf("config: MaxSessions %d must be positive", c.MaxSessions)
	}
	return c.Timing.validate()
}

// validate checks that every wait and interval is positive.
func (t Timing) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"BlameGrace", t.BlameGrace}, {"DealerWait", t.DealerWait}, {"PeerWait", t.PeerWait},
		{"TombstoneSweep", t.TombstoneSweep}, {"AdvertiseInterval", t.AdvertiseInterval},
	} {
		if f.d <= 0 {
			return fmt.Errorf("config: Timing.%s %v must be positive", f.name, f.d)
		}
	}
	return nil
}

// fileConfig is the JSON layout of the repo's config file.
type fileConfig struct {
	Identity struct {
		PeerID  string `json:"PeerID"`
		PrivKey string `json:"PrivKey"` // base64 of the libp2p protobuf key
	} `json:"Identity"`
	Addresses struct {
		Listen   []string `json:"Listen"`
		Announce []string `json:"Announce"`
		API      string   `json:"API"`
	} `json:"Addresses"`
	Swarm struct {
		NAT bool `json:"NAT"`
	} `json:"Swarm"`
	Bootstrap []string `json:"Bootstrap"`
	Roles     []string `json:"Roles"`
	Sessions  struct {
		Timeout string `json:"Timeout"`
		Max     int    `json:"Max"`
	} `json:"Sessions"`
}

// maxConfigSize caps the config file read by LoadConfig.
const maxConfigSize = 1 << 20

// Init creates a repo dir: a fresh ed25519 identity and a config file
// (mode 0600) with the defaults and the given bootstrap peers. The repo
// dir and its datastore dir are made mode 0700 even if they existed with
// another mode: the datastore holds the weight shares. It fails if the repo
// already has a config. Its addresses are the test profile's
// (ProfileTest): InitProfile chooses.
func Init(repoDir string, bootstrap []string) (peer.ID, error) {
	return InitProfile(repoDir, bootstrap, ProfileTest)
}

// initRepo is Init with the profile's addresses.
func initRepo(repoDir string, bootstrap []string, prof profileFile) (peer.ID, error) {
	if repoDir == "" {
		return "", errors.New("init: repo dir is empty")
	}
	for i, a := range bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return "", fmt.Errorf("init: bootstrap[%d] %q: %w", i, a, err)
		}
	}
	if err := privateDir(repoDir); err != nil {
		return "", fmt.Errorf("init: repo dir: %w", err)
	}
	if err := privateDir(filepath.Join(repoDir, DatastoreDir)); err != nil {
		return "", fmt.Errorf("init: datastore dir: %w", err)
	}
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("init: generate identity: %w", err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("init: peer id: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("init: marshal identity: %w", err)
	}
	def := DefaultConfig()
	var fc fileConfig
	fc.Identity.PeerID = id.String()
	fc.Identity.PrivKey = base64.StdEncoding.EncodeToString(raw)
	fc.Addresses.Listen = prof.listen
	fc.Addresses.Announce = []string{}
	fc.Addresses.API = prof.api
	fc.Swarm.NAT = prof.nat
	fc.Bootstrap = append([]string{}, bootstrap...)
	fc.Roles = def.Roles
	fc.Sessions.Timeout = def.SessionTimeout.String()
	fc.Sessions.Max = def.MaxSessions
	b, err := json.MarshalIndent(&fc, "", "  ")
	if err != nil {
		return "", fmt.Errorf("init: encode config: %w", err)
	}
	path := filepath.Join(repoDir, ConfigFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("init: %s already exists (repo already initialised)", path)
	}
	if err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("init: write config: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("init: write config: %w", err)
	}
	return id, nil
}

// LoadConfig reads the repo's config file into a Config (RepoDir set, the
// identity loaded). Neither the repo dir nor the file may be accessible by
// group or others: the file holds the private key and the repo's datastore
// the weight shares. Like ssh with its keys, LoadConfig refuses such a
// repo and says which chmod fixes it, rather than changing modes itself.
func LoadConfig(repoDir string) (Config, error) {
	path := filepath.Join(repoDir, ConfigFile)
	st, err := os.Stat(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w (run init first)", err)
	}
	dst, err := os.Stat(repoDir)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	if dst.Mode().Perm()&0o077 != 0 {
		return Config{}, fmt.Errorf("load config: repo dir %s has mode %#o and holds the private key and the shares: chmod 700 it", repoDir, dst.Mode().Perm())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Config{}, fmt.Errorf("load config: %s has mode %#o and holds the private key: chmod 600 it", path, st.Mode().Perm())
	}
	if st.Size() > maxConfigSize {
		return Config{}, fmt.Errorf("load config: %s is %d bytes, over the %d-byte limit", path, st.Size(), maxConfigSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	c, err := parseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	c.RepoDir = repoDir
	return c, nil
}

// privateDir creates dir (and its parents) if needed and makes it mode
// 0700 whatever mode it had.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod 700 %s: %w", dir, err)
	}
	return nil
}

// parseConfig decodes a config file's bytes. It is the fuzzed decoder.
func parseConfig(b []byte) (Config, error) {
	if len(b) > maxConfigSize {
		return Config{}, fmt.Errorf("config is %d bytes, over the %d-byte limit", len(b), maxConfigSize)
	}
	var fc fileConfig
	if err := json.Unmarshal(b, &fc); err != nil {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(fc.Identity.PrivKey)
	if err != nil {
		return Config{}, fmt.Errorf("Identity.PrivKey: %w", err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return Config{}, fmt.Errorf("Identity.PrivKey: %w", err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return Config{}, fmt.Errorf("Identity.PrivKey: %w", err)
	}
	if fc.Identity.PeerID != id.String() {
		return Config{}, fmt.Errorf("Identity.PeerID %q does not match the private key (%s)", fc.Identity.PeerID, id)
	}
	c := DefaultConfig()
	c.identity = sk
	c.Listen = fc.Addresses.Listen
	c.Announce = fc.Addresses.Announce
	c.APIAddr = fc.Addresses.API
	c.Bootstrap = fc.Bootstrap
	c.NAT = fc.Swarm.NAT
	if fc.Roles != nil {
		c.Roles = fc.Roles
	}
	if fc.Sessions.Timeout != "" {
		d, err := time.ParseDuration(fc.Sessions.Timeout)
		if err != nil {
			return Config{}, fmt.Errorf("Sessions.Timeout: %w", err)
		}
		c.SessionTimeout = d
	}
	if fc.Sessions.Max != 0 {
		c.MaxSessions = fc.Sessions.Max
	}
	return c, nil
}

// loadIdentity returns the config's private key, reading it from the repo's
// config file when the Config was built by hand.
func (c *Config) loadIdentity() (crypto.PrivKey, error) {
	if c.identity != nil {
		return c.identity, nil
	}
	fc, err := LoadConfig(c.RepoDir)
	if err != nil {
		return nil, err
	}
	return fc.identity, nil
}
