package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiServer is the daemon's local HTTP API.
type apiServer struct {
	srv  *http.Server
	addr string // host:port actually bound
	file string // the repo's api file
	done chan struct{}
}

// IDInfo is the answer of /api/v0/id.
type IDInfo struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
	Roles     []string `json:"roles"`
	Protocols []string `json:"protocols"`
}

// PeerInfo is one entry of /api/v0/peers.
type PeerInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs,omitempty"`
}

// PeersInfo is the answer of /api/v0/peers.
type PeersInfo struct {
	Peers []PeerInfo `json:"peers"`
}

// Info returns what /api/v0/id serves.
func (n *Node) Info() IDInfo {
	info := IDInfo{ID: n.ID().String(), Addresses: []string{}, Roles: append([]string{}, n.cfg.Roles...)}
	for _, a := range n.Addrs() {
		info.Addresses = append(info.Addresses, a.String())
	}
	for _, p := range n.h.Mux().Protocols() {
		info.Protocols = append(info.Protocols, string(p))
	}
	return info
}

// PeersInfo returns what /api/v0/peers serves.
func (n *Node) PeersInfo() PeersInfo {
	out := PeersInfo{Peers: []PeerInfo{}}
	for _, p := range n.Peers() {
		pi := PeerInfo{ID: p.String()}
		for _, c := range n.h.Network().ConnsToPeer(p) {
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr().String())
		}
		out.Peers = append(out.Peers, pi)
	}
	return out
}

// startAPI serves /api/v0/id, /api/v0/peers and /debug/metrics/prometheus
// (and cfg.Web at every other path, when set) on cfg.APIAddr and writes
// the bound address into the repo's api file.
func startAPI(n *Node) (*apiServer, error) {
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", n.cfg.APIAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v0/id", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Info()) })
	mux.HandleFunc("/api/v0/peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.PeersInfo()) })
	mux.Handle("/debug/metrics/prometheus", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/api/v0/shutdown", n.serveShutdown)
	if n.cfg.Web != nil {
		mux.Handle("/", n.cfg.Web)
	}
	a := &apiServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second},
		addr: ln.Addr().String(),
		file: filepath.Join(n.cfg.RepoDir, APIFile),
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api server", "err", err)
		}
	}()
	tmp := a.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(a.addr+"\n"), 0o600); err == nil {
		err = os.Rename(tmp, a.file)
	}
	if err != nil {
		a.close()
		return nil, fmt.Errorf("write api file: %w", err)
	}
	return a, nil
}

func (a *apiServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	<-a.done
	if rerr := os.Remove(a.file); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
