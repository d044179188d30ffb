// Package web is grid's browser client, embedded in the grid binary: the
// page a daemon serves at its HTTP API's address ("/") and the ES module
// other web apps import ("/grid.js": connect(), models(), infer()).
//
// The sources are the TypeScript in src/ (the protobuf code in src/pb/ is
// generated from node/pb/grid.proto, discovery/pb/manifest.proto and
// proto/kad.proto); build.mjs bundles them with esbuild into dist/, which
// is committed, so building grid needs no Node.js. scripts/build-web.sh
// rebuilds dist/ and "scripts/build-web.sh --check" fails when the
// committed files are stale. docs/BROWSER.md describes the whole.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Files is the built page: index.html, style.css, page.js, grid.js and the
// bundled packages' license comments (grid.js.LEGAL.txt).
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embedded tree always has dist
	}
	return sub
}

// contentSecurityPolicy limits the page to its own scripts and styles and
// lets it open WebSockets (libp2p) and fetch its own origin's API.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// modTime is the served files' Last-Modified: the binary's files never
// change while it runs.
var modTime = time.Now()

// Handler serves the page: "/" (index.html), "/style.css", "/page.js",
// "/grid.js" and "/grid.js.LEGAL.txt"; any other path is 404. The module /grid.js may be
// imported by pages of any origin (Access-Control-Allow-Origin: *); the
// daemon's API (/api/v0/...) stays same-origin, so such a page passes the
// daemon's address to connect() itself.
func Handler() http.Handler {
	files := Files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(files, name)
		if err != nil || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		switch {
		case strings.HasSuffix(name, ".html"):
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
		case strings.HasSuffix(name, ".css"):
			h.Set("Content-Type", "text/css; charset=utf-8")
		case strings.HasSuffix(name, ".js"):
			h.Set("Content-Type", "text/javascript; charset=utf-8")
			if name == "grid.js" {
				h.Set("Access-Control-Allow-Origin", "*")
			}
		default:
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		http.ServeContent(w, r, name, modTime, strings.NewReader(string(b)))
	})
}
