package node

import (
	"net"
	"net/http"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// CheckConfig checks a config file's bytes as LoadConfig would read them
// (identity, addresses, roles, sessions): "grid config KEY VALUE" and
// "grid bootstrap" check an edit with it before writing.
func CheckConfig(b []byte) error {
	c, err := parseConfig(b)
	if err != nil {
		return err
	}
	c.RepoDir = "."
	return c.Validate()
}

// serveShutdown is /api/v0/shutdown: a POST without a foreign Origin
// stops the daemon through Config.Shutdown.
func (n *Node) serveShutdown(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	// A web page of another origin must not stop the daemon (a browser
	// sends its Origin with a cross-origin POST); the CLI sends none.
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	// DNS rebinding: a page of another origin whose name resolves to this
	// address has a matching Origin and Host, but its Host is a name. The
	// CLI addresses the API by IP (the repo's api file).
	if !literalHost(r.Host) {
		http.Error(w, "request for host "+r.Host+" refused: address the API by IP or localhost", http.StatusForbidden)
		return
	}
	if n.cfg.Shutdown == nil {
		http.Error(w, "this node cannot be shut down through its API", http.StatusNotImplemented)
		return
	}
	writeJSON(w, map[string]string{"status": "shutting down"})
	go n.cfg.Shutdown()
}

// literalHost reports whether an HTTP Host header names an IP address or
// localhost (not a DNS name an attacker controls).
func literalHost(h string) bool {
	host, _, err := net.SplitHostPort(h)
	if err != nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || net.ParseIP(host) != nil
}

// PeerID returns the peer ID of the config's identity.
func (c *Config) PeerID() (peer.ID, error) {
	sk, err := c.loadIdentity()
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(sk)
}
