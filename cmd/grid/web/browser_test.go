package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The headless-Chromium tests run only with GRID_BROWSER_TEST=1 (what
// scripts/test-browser.sh sets): they need Node.js, "npm ci" in
// cmd/grid/web (puppeteer-core) and Debian's chromium, none of which
// "go test ./..." may assume. Set, a missing piece is a failure, not a skip.

// webDir is this package's directory (go test runs in it).
func webDir(t *testing.T) string {
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// repoRoot is the module's root, three levels up.
func repoRoot(t *testing.T) string { return filepath.Join(webDir(t), "..", "..", "..") }

// needBrowser skips unless GRID_BROWSER_TEST=1 and then checks that
// node, the npm packages and chromium are there.
func needBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	if os.Getenv("GRID_BROWSER_TEST") != "1" {
		t.Skip("headless-Chromium test: set GRID_BROWSER_TEST=1 (scripts/test-browser.sh; needs node, npm ci in cmd/grid/web and Debian's chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("GRID_BROWSER_TEST=1 but node is not installed (apt-get install nodejs npm)")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("GRID_BROWSER_TEST=1 but %s is missing (apt-get install chromium, or set CHROMIUM): %v", chromium, err)
	}
	if _, err := os.Stat(filepath.Join(webDir(t), "node_modules", "puppeteer-core")); err != nil {
		t.Fatal("GRID_BROWSER_TEST=1 but cmd/grid/web/node_modules lacks puppeteer-core: run npm ci in cmd/grid/web")
	}
	return node, chromium
}

// driver is test/driver.mjs running: one JSON command per line in, one
// JSON answer per line out.
type driver struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	errs  *strings.Builder
	mu    sync.Mutex
}

// startDriver starts the driver (and so Chromium) in a process group of
// its own, stopped by its PID at cleanup.
func startDriver(t *testing.T) *driver {
	node, chromium := needBrowser(t)
	cmd := exec.Command(node, filepath.Join("test", "driver.mjs"))
	cmd.Dir = webDir(t)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, cmd: cmd, in: in, lines: make(chan string, 16), errs: &strings.Builder{}}
	cmd.Stderr = &lockedWriter{w: d.errs, mu: &d.mu}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the browser driver: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(d.stop)
	return d
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stop asks the driver to quit (it closes Chromium), then kills its
// process group if it has not exited within 15 s.
func (d *driver) stop() {
	_, _ = io.WriteString(d.in, `{"do":"quit"}`+"\n")
	_ = d.in.Close()
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// do sends one command and decodes the answer into v; an answer with ok
// false is an error.
func (d *driver) do(cmd map[string]any, v any) error {
	b, _ := json.Marshal(cmd)
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("driver: write %s: %w", b, err)
	}
	select {
	case line, ok := <-d.lines:
		if !ok {
			d.mu.Lock()
			defer d.mu.Unlock()
			return fmt.Errorf("driver exited; stderr: %s", d.errs.String())
		}
		var r struct {
			OK    bool     `json:"ok"`
			Error string   `json:"error"`
			Logs  []string `json:"logs"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("driver answer %q: %w", line, err)
		}
		for _, l := range r.Logs {
			d.t.Logf("page: %s", l)
		}
		if !r.OK {
			return fmt.Errorf("driver %s: %s", cmd["do"], r.Error)
		}
		if v != nil {
			return json.Unmarshal([]byte(line), v)
		}
		return nil
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("driver: no answer to %s within 3 minutes", b)
	}
}

// must is do that fails the test.
func (d *driver) must(cmd map[string]any, v any) {
	d.t.Helper()
	if err := d.do(cmd, v); err != nil {
		d.t.Fatal(err)
	}
}

// pageResult is what the page shows after a query.
type pageResult struct {
	State   string    `json:"state"`
	Code    string    `json:"code"`
	Text    string    `json:"text"`
	Answer  string    `json:"answer"`
	Classes string    `json:"classes"`
	Output  []float64 `json:"output"`
	MS      float64   `json:"ms"`
}

// apiResult is one window.grid.infer answer.
type apiResult struct {
	Output  []float64          `json:"output"`
	Shape   []int              `json:"shape"`
	MS      float64            `json:"ms"`
	Stages  map[string]float64 `json:"stages"`
	Online  float64            `json:"onlineMs"`
	Rounds  int                `json:"rounds"`
	Bytes   int                `json:"bytes"`
	Upload  int                `json:"upload"`
	Holders []string           `json:"holders"`
	Dealer  string             `json:"dealer"`
	Error   string             `json:"error"`
	Code    string             `json:"code"`
}

func (d *driver) query(q map[string]any) pageResult {
	d.t.Helper()
	q["do"] = "query"
	var r pageResult
	d.must(q, &r)
	return r
}

func (d *driver) api(model string, values []float64, n int) []apiResult {
	d.t.Helper()
	var r struct {
		Results []apiResult `json:"results"`
	}
	d.must(map[string]any{"do": "api", "model": model, "values": values, "n": n}, &r)
	for i, x := range r.Results {
		if x.Error != "" {
			d.t.Fatalf("window.grid.infer(%q) #%d: %s (%s)", model, i, x.Error, x.Code)
		}
	}
	return r.Results
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// argmaxRows is the class of each row of a [rows, classes] output.
func argmaxRows(out []float64, classes int) []int {
	var cls []int
	for r := 0; r+classes <= len(out); r += classes {
		best := 0
		for i := 1; i < classes; i++ {
			if out[r+i] > out[r+best] {
				best = i
			}
		}
		cls = append(cls, best)
	}
	return cls
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
