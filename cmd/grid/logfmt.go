package main

import (
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// newLogger is the grid command's logger: slog's text format on w, with
// peer IDs shortened like libp2p's ShortString ("12*AbCdEf": the first 2
// and the last 6 characters) and one peer= key per line: the node's own
// ID, which node.New attaches to every line as peer= (the daemon prints
// it once at start), is dropped, and a remote peer logged as remote= is
// named peer=. With several nodes in one process (grid demo), the own ID
// is kept as node= instead.
func newLogger(w io.Writer, level slog.Level, several bool) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: shortPeers})
	return slog.New(dropSelf{Handler: h, rename: several})
}

// shortPeers is the handler's ReplaceAttr: peer IDs shortened, remote=
// renamed peer=.
func shortPeers(_ []string, a slog.Attr) slog.Attr {
	if a.Key == "remote" {
		a.Key = "peer"
	}
	switch a.Value.Kind() {
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case peer.ID:
			a.Value = slog.StringValue(shortPeer(v.String()))
		case []peer.ID:
			s := make([]string, len(v))
			for i, p := range v {
				s[i] = shortPeer(p.String())
			}
			a.Value = slog.StringValue(strings.Join(s, ","))
		}
	case slog.KindString:
		if s := a.Value.String(); len(s) >= 46 && (strings.HasPrefix(s, "12D3KooW") || strings.HasPrefix(s, "Qm")) {
			if _, err := peer.Decode(s); err == nil {
				a.Value = slog.StringValue(shortPeer(s))
			}
		}
	}
	return a
}

// shortPeer abbreviates a peer ID as libp2p's peer.ID.ShortString does,
// without its "<peer.ID ...>" wrapper: the first 2 and the last 6
// characters, 12D3KooWDp...4kx6nXTN -> 12*x6nXTN.
func shortPeer(id string) string {
	if len(id) <= 10 {
		return id
	}
	return id[:2] + "*" + id[len(id)-6:]
}

// dropSelf drops the peer= attribute a node attaches to its logger (its
// own ID, node.New's log.With("peer", ...)), so that peer= on a line is
// the remote peer it is about.
// With rename, it is kept as node= instead.
type dropSelf struct {
	slog.Handler
	rename bool
}

func (h dropSelf) WithAttrs(attrs []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		switch {
		case a.Key != "peer":
			kept = append(kept, a)
		case h.rename:
			kept = append(kept, slog.Attr{Key: "node", Value: a.Value})
		}
	}
	return dropSelf{h.Handler.WithAttrs(kept), h.rename}
}

func (h dropSelf) WithGroup(name string) slog.Handler {
	return dropSelf{h.Handler.WithGroup(name), h.rename}
}

// gate holds what is written to it until open, then writes it through:
// the daemon's logs during its start (a restarted holder replays its
// stored manifests: "manifest accepted" lines) come after its ready
// banner, not before it, when stdout and stderr go to one file.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	held   []byte
	opened bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		if len(g.held) < 1<<20 {
			g.held = append(g.held, p...)
		}
		return len(p), nil
	}
	return g.w.Write(p)
}

// open writes what was held and lets later writes through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opened {
		return
	}
	g.opened = true
	_, _ = g.w.Write(g.held)
	g.held = nil
}
