package web_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/grid/web"
	"github.com/gridmpc/grid/node"
	"github.com/gridmpc/grid/node/nodetest"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFiles checks the embedded bundle: every file is there and not empty,
// the page loads its module, which imports grid.js (not a copy of it).
func TestFiles(t *testing.T) {
	for _, name := range []string{"index.html", "style.css", "page.js", "grid.js", "grid.js.LEGAL.txt"} {
		b, err := fs.ReadFile(web.Files(), name)
		if err != nil || len(b) == 0 {
			t.Errorf("embedded %s: %d bytes, %v", name, len(b), err)
		}
	}
	index, _ := fs.ReadFile(web.Files(), "index.html")
	if !strings.Contains(string(index), `<script type="module" src="/page.js">`) {
		t.Error("index.html does not load /page.js as a module")
	}
	page, _ := fs.ReadFile(web.Files(), "page.js")
	if !strings.Contains(string(page), `"./grid.js"`) {
		t.Error("page.js does not import ./grid.js")
	}
	grid, _ := fs.ReadFile(web.Files(), "grid.js")
	for _, want := range []string{"/grid/infer/1.0.0", "/grid/dealer/1.0.0", "/grid/manifests/1.0.0", "/grid/kad/1.0.0", "grid-manifest", "/grid/manifest/1"} {
		if !strings.Contains(string(grid), want) {
			t.Errorf("grid.js does not name %q", want)
		}
	}
}

// TestHandler checks what each path serves and with which headers.
func TestHandler(t *testing.T) {
	h := web.Handler()
	for _, c := range []struct {
		path, ctype string
		cors, csp   bool
	}{
		{"/", "text/html; charset=utf-8", false, true},
		{"/page.js", "text/javascript; charset=utf-8", false, false},
		{"/grid.js", "text/javascript; charset=utf-8", true, false},
		{"/style.css", "text/css; charset=utf-8", false, false},
		{"/grid.js.LEGAL.txt", "text/plain; charset=utf-8", false, false},
	} {
		r := get(t, h, http.MethodGet, c.path)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: %d %q, want 200 %q", c.path, r.StatusCode, r.Header.Get("Content-Type"), c.ctype)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin") == "*"; got != c.cors {
			t.Errorf("GET %s: Access-Control-Allow-Origin %q", c.path, r.Header.Get("Access-Control-Allow-Origin"))
		}
		if got := strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'"); got != c.csp {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, r.Header.Get("Content-Security-Policy"))
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
	}
	for _, p := range []string{"/index.html", "/nope", "/api/v0/other", "/../web.go", "/dist/grid.js"} {
		if r := get(t, h, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodPost, "/"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", r.StatusCode)
	}
	if r := get(t, h, http.MethodHead, "/grid.js"); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD /grid.js: %d", r.StatusCode)
	}
}

// TestServedByNode checks a node with Config.Web: its HTTP API serves the
// page beside /api/v0/id, whose addresses include the WebSocket one the
// page dials.
func TestServedByNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := nodetest.StartNode(ctx, filepath.Join(t.TempDir(), "n"), true, func(c *node.Config) {
		c.APIAddr, c.Web = "127.0.0.1:0", web.Handler()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	resp, err := http.Get("http://" + n.APIAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "/page.js") {
		t.Fatalf("GET /: %d %.80q", resp.StatusCode, page)
	}
	resp, err = http.Get("http://" + n.APIAddr() + "/api/v0/id")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info node.IDInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	ws := false
	for _, a := range info.Addresses {
		ws = ws || strings.Contains(a, "/ws/p2p/")
	}
	if !ws {
		t.Errorf("/api/v0/id addresses %v: no WebSocket address for the page to dial", info.Addresses)
	}
}
