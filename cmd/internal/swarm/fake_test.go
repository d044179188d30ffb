package swarm

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gridmpc/grid/discovery"
)

// The test binary doubles as a fake grid binary when fakeEnv names a state
// directory: it speaks the CLI's contract (init --json, the daemon's stdout
// protocol and HTTP API, publish --json, infer --json with exit codes) over
// files in that directory instead of a network, so the runner's process
// handling, churn bookkeeping and classification are tested in seconds
// without the real node. The "answer" is the seed model's: 2*x0 + 4*x1 +
// 1000, given only while every holder of the model is up.
const (
	fakeEnv      = "GRID_SWARM_FAKE_STATE"
	fakeWrongEnv = "GRID_SWARM_FAKE_WRONG" // "1": answers are off by one
	fakeHangEnv  = "GRID_SWARM_FAKE_HANG"  // "1": the daemon ignores SIGTERM
	// "1": a replicated model still needs every holder (a client that
	// does not route around a dead replica)
	fakeNoTolerateEnv = "GRID_SWARM_FAKE_NO_TOLERATE"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeEnv); dir != "" {
		os.Exit(fakeGrid(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeGrid(state string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "grid: no command")
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	repo := fs.String("repo", "", "")
	asJSON := fs.Bool("json", false, "")
	id := fs.String("id", "", "")
	holders := fs.Int("holders", 0, "")
	tolerate := fs.Int("tolerate", 0, "")
	values := fs.String("values", "", "")
	api := fs.String("api", "", "")
	plain := fs.Bool("plain", false, "")
	fs.Bool("quiet", false, "")
	fs.String("profile", "", "") // grid init --profile test (harness.Init)
	fs.Duration("timeout", 0, "")
	var listen, announce, bootstrap multi
	fs.Var(&listen, "listen", "")
	fs.Var(&announce, "announce", "")
	fs.Var(&bootstrap, "bootstrap", "")
	// Flags may follow positional arguments, as with cobra.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	_ = asJSON
	peers := filepath.Join(state, "peers")
	models := filepath.Join(state, "models")
	_ = os.MkdirAll(peers, 0o755)
	_ = os.MkdirAll(models, 0o755)
	switch args[0] {
	case "init":
		sk, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		pid, _ := peerIDOf(sk)
		raw, _ := crypto.MarshalPrivateKey(sk)
		cfg := map[string]any{"Identity": map[string]string{"PeerID": pid, "PrivKey": base64.StdEncoding.EncodeToString(raw)}, "Roles": []string{"holder"}}
		b, _ := json.Marshal(cfg)
		_ = os.MkdirAll(*repo, 0o700)
		if err := os.WriteFile(filepath.Join(*repo, "config"), b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "grid:", err)
			return 1
		}
		fmt.Printf("{\"id\":%q}\n", pid)
		return 0
	case "daemon":
		me := fakeRepoID(*repo)
		ln, err := net.Listen("tcp", *api)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grid:", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/api/v0/peers", func(w http.ResponseWriter, r *http.Request) {
			ents, _ := os.ReadDir(peers)
			var ps []map[string]string
			for _, e := range ents {
				if e.Name() != me {
					ps = append(ps, map[string]string{"id": e.Name()})
				}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"peers": ps})
		})
		mux.HandleFunc("/api/v0/models", func(w http.ResponseWriter, r *http.Request) {
			ents, _ := os.ReadDir(models)
			var ms []map[string]string
			for _, e := range ents {
				ms = append(ms, map[string]string{"id": e.Name()})
			}
			_ = json.NewEncoder(w).Encode(ms)
		})
		go http.Serve(ln, mux)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		_ = os.WriteFile(filepath.Join(peers, me), []byte(strconv.Itoa(os.Getpid())), 0o644)
		fmt.Println("peer ID " + me)
		addr := listen[0]
		if len(announce) > 0 {
			addr = announce[0]
		}
		fmt.Println("listening on " + addr + "/p2p/" + me)
		fmt.Println("API server listening on " + ln.Addr().String())
		fmt.Println("daemon is ready")
		for {
			<-sig
			if os.Getenv(fakeHangEnv) != "1" {
				break
			}
		}
		_ = os.Remove(filepath.Join(peers, me))
		return 0
	case "publish":
		ents, _ := os.ReadDir(peers)
		var hs []string
		for _, e := range ents {
			hs = append(hs, e.Name())
		}
		slices.Sort(hs)
		if *plain {
			*holders = 1
		}
		if len(hs) < *holders {
			fmt.Fprintf(os.Stderr, "grid: %d holders found, %d wanted\n", len(hs), *holders)
			return 1
		}
		hs = hs[len(hs)-*holders:]
		m := fakeModel{ID: *id, Holders: hs}
		if *tolerate > 0 {
			m.Shares = discovery.ReplicatedShares(len(hs), *tolerate)
		}
		b, _ := json.Marshal(m)
		_ = os.WriteFile(filepath.Join(models, *id), b, 0o644)
		fmt.Println(string(b))
		return 0
	case "infer":
		if code := fakeCovered(filepath.Join(models, pos[0]), peers); code != 0 {
			return code
		}
		var x []float64
		for _, s := range strings.Split(*values, ",") {
			v, _ := strconv.ParseFloat(s, 64)
			x = append(x, v)
		}
		y := 2*x[0] + 4*x[1] + 1000
		if os.Getenv(fakeWrongEnv) == "1" {
			y++
		}
		b, _ := json.Marshal(map[string]any{"model": pos[0], "shape": []int{1}, "output": []float64{y},
			"rounds": 2, "online_ms": 1.5, "total_ms": 3.0})
		fmt.Println(string(b))
		return 0
	}
	fmt.Fprintf(os.Stderr, "grid: unknown command %q\n", args[0])
	return 2
}

// fakeModel is a fake manifest: what `grid publish --json` prints.
type fakeModel struct {
	ID      string   `json:"id"`
	Holders []string `json:"holders"`
	Shares  [][]int  `json:"shares,omitempty"`
}

// fakeCovered is the fake infer's availability check: exit 1 with one line
// unless every share of the model (share i on holder i when it has no
// Shares; any holder when fakeNoTolerateEnv is "1") has a live holder.
func fakeCovered(path, peers string) int {
	b, err := os.ReadFile(path)
	var m fakeModel
	if err != nil || json.Unmarshal(b, &m) != nil {
		fmt.Fprintf(os.Stderr, "grid: infer %q: unknown model\n", filepath.Base(path))
		return 1
	}
	shares := m.Shares
	if len(shares) == 0 || os.Getenv(fakeNoTolerateEnv) == "1" {
		shares = discovery.CNFShares(len(m.Holders), 0) // share i on holder i
	}
	for i, hs := range shares {
		if !slices.ContainsFunc(hs, func(j int) bool { return fakeAlive(filepath.Join(peers, m.Holders[j])) }) {
			fmt.Fprintf(os.Stderr, "grid: infer %q: no live holder of share %d: holder %s: connection refused\n", m.ID, i, m.Holders[hs[0]])
			return 1
		}
	}
	return 0
}

// fakeAlive reports whether the fake daemon whose pid file is path runs:
// a crashed (SIGKILLed) one leaves its file behind (and is reaped by the
// runner before the next query).
func fakeAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(string(b))
	return err == nil && syscall.Kill(pid, 0) == nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// fakeRepoID reads the peer ID from a repo's config.
func fakeRepoID(repo string) string {
	b, _ := os.ReadFile(filepath.Join(repo, "config"))
	var cfg struct{ Identity struct{ PeerID string } }
	_ = json.Unmarshal(b, &cfg)
	return cfg.Identity.PeerID
}

func peerIDOf(sk crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(sk)
	return id.String(), err
}

// fakeBin returns the test binary, to be run as the fake grid with its
// state in a fresh directory (set in the environment for the children).
func fakeBin(t *testing.T) string {
	t.Helper()
	t.Setenv(fakeEnv, t.TempDir())
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// fakeScenario is a small scenario of case c for the fake grid.
func fakeScenario(t *testing.T, c string) *Scenario {
	t.Helper()
	model := filepath.Join(t.TempDir(), "seed.onnx")
	if err := os.WriteFile(model, []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := validScenario()
	s.Case = c
	s.Instances = []int{5}
	s.Params.ModelFile = model
	s.Params.Queries = 3
	s.Timeouts.Ready = Duration(20 * time.Second)
	s.Timeouts.Total = Duration(2 * time.Minute)
	switch c {
	case CaseChurn:
		s.Params.Queries = 12
		s.Params.Churn = &Churn{Rate: 1, MaxDown: 2}
	case CaseWAN:
		s.Params.RTTs = []Duration{0, Duration(20 * time.Millisecond)}
	case CaseScale:
		s.Instances = []int{5, 6}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return &s
}
