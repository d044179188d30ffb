//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gridmpc/grid/cmd/internal/harness"
)

// natLabScript builds the NAT lab inside a new user and network namespace
// (unshare -Urn): that namespace, T, is the lab's "internet" (11.0.0.0/8,
// routable-looking so that go-libp2p treats it as public; it exists only
// in these namespaces, which have no link to the host's network). Two NAT
// routers, NA and NB, masquerade the private networks 10.1.0.0/24 and
// 10.2.0.0/24 of the hosts HA and HB behind them. T holds 11.0.9.1-4 for
// its public nodes, each on its own address (go-libp2p trusts an observed
// address once 4 distinct peers report it). The script prints the
// namespaces' holder PIDs, then waits; SIGTERM ends it and its namespaces.
const natLabScript = `set -eu
ip link set lo up
newns() { unshare -n sleep 600 >/dev/null 2>&1 & echo $!; }
nsdo() { local pid=$1; shift; nsenter -t "$pid" -n "$@"; }
NA=$(newns); NB=$(newns); HA=$(newns); HB=$(newns)
trap 'exit 0' TERM INT
trap 'kill $NA $NB $HA $HB ${S:-} 2>/dev/null' EXIT
sleep 0.2
echo 1 > /proc/sys/net/ipv4/ip_forward
link() { # NS1 IF1 ADDR1 NS2 IF2 ADDR2 (NS "self": T)
  ip link add "$2" type veth peer name "$5"
  [ "$1" = self ] || ip link set "$2" netns "$1"
  [ "$4" = self ] || ip link set "$5" netns "$4"
  for side in "$1 $2 $3" "$4 $5 $6"; do
    set -- $side
    if [ "$1" = self ]; then ip addr add "$3" dev "$2"; ip link set "$2" up
    else nsdo "$1" ip addr add "$3" dev "$2"; nsdo "$1" ip link set "$2" up; nsdo "$1" ip link set lo up; fi
  done
}
link self ta 11.0.1.1/24 "$NA" na-pub 11.0.1.2/24
link self tb 11.0.2.1/24 "$NB" nb-pub 11.0.2.2/24
link "$NA" na-priv 10.1.0.1/24 "$HA" ha0 10.1.0.2/24
link "$NB" nb-priv 10.2.0.1/24 "$HB" hb0 10.2.0.2/24
for r in "$NA na-pub 11.0.1.1" "$NB nb-pub 11.0.2.1"; do
  set -- $r
  nsdo "$1" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  nsdo "$1" ip route add default via "$3"
  nsdo "$1" iptables -t nat -A POSTROUTING -o "$2" -j MASQUERADE
done
nsdo "$HA" ip route add default via 10.1.0.1
nsdo "$HB" ip route add default via 10.2.0.1
for k in 1 2 3 4; do ip addr add 11.0.9.$k/32 dev lo; done
echo "lab T=$$ NA=$NA NB=$NB HA=$HA HB=$HB"
sleep 600 & S=$!
wait
`

// natLabUnavailable says why this machine cannot run the NAT lab ("" if
// it can): the tools, user and network namespaces for this user, and NAT
// (iptables MASQUERADE) inside them.
func natLabUnavailable() string {
	for _, tool := range []string{"unshare", "nsenter", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("NAT lab: %s not found (needs util-linux, iproute2, iptables)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe := "ip link add natp0 type veth peer name natp1 && iptables -t nat -A POSTROUTING -o natp0 -j MASQUERADE"
	if out, err := exec.CommandContext(ctx, "unshare", "-Urn", "sh", "-c", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("NAT lab: this user cannot create a network namespace with NAT (unshare -Urn; %s): %v: %s",
			probe, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// natLab is a running NAT lab: the PIDs whose network namespaces are T,
// NA, NB, HA and HB.
type natLab struct {
	pids map[string]int
	dir  string
}

// startNATLab runs natLabScript and waits for its PIDs; the test's cleanup
// ends it.
func startNATLab(t *testing.T, dir string) *natLab {
	t.Helper()
	script := filepath.Join(dir, "natlab.sh")
	if err := os.WriteFile(script, []byte(natLabScript), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-Urn", "--fork", "bash", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "lab ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	lab := &natLab{pids: map[string]int{}, dir: dir}
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
	}
	t.Cleanup(func() {
		if p, ok := lab.pids["T"]; ok {
			_ = syscall.Kill(p, syscall.SIGTERM) // the script; it ends its namespaces
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	for _, f := range strings.Fields(strings.TrimPrefix(line, "lab ")) {
		var name string
		var pid int
		if _, err := fmt.Sscanf(strings.Replace(f, "=", " ", 1), "%s %d", &name, &pid); err == nil {
			lab.pids[name] = pid
		}
	}
	if len(lab.pids) != 5 {
		_ = cmd.Process.Kill()
		t.Fatalf("NAT lab did not start (%q): %s", line, stderr.String())
	}
	return lab
}

// wrap writes a script that runs bin inside namespace ns (user and
// network namespaces of its PID) and returns its path: a harness Bin.
func (l *natLab) wrap(t *testing.T, bin, ns string) string {
	t.Helper()
	path := filepath.Join(l.dir, "grid-in-"+ns)
	body := fmt.Sprintf("#!/bin/sh\nexec nsenter -t %d -U -n --preserve-credentials %s \"$@\"\n", l.pids[ns], bin)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNATRelay puts two holders behind separate NATs (masquerading, no
// port mapping; HA and HB) and four public nodes in the lab's internet,
// one of them with the relay role, and checks that each holder,
// unreachable from outside, learns so (its observed address fails
// AutoNAT) and reserves a slot on the relay: it announces a /p2p-circuit
// address through it. Then an owner in the internet publishes the seed
// over the two NATed holders and a client behind NAT A queries it: the
// upload, the dealer's material, the client's session with the holder
// behind the other NAT and the holders' MPC between the two NATs all go
// through the relay (or a hole-punched connection), and the answer is
// exact.
func TestNATRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("NAT lab with real processes; skipped with -short")
	}
	if reason := natLabUnavailable(); reason != "" {
		t.Skip(reason)
	}
	dir := t.TempDir()
	lab := startNATLab(t, dir)
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bin, err := harness.Build(bctx, dir)
	bcancel()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	public := harness.Options{Bin: lab.wrap(t, bin, "T"), ReadyTimeout: 20 * time.Second, StopTimeout: 10 * time.Second}
	boot := startPublicNodes(ctx, t, bin, dir, public)
	var holders []natHolder
	for _, ns := range []string{"HA", "HB"} {
		natted := public
		natted.Bin = lab.wrap(t, bin, ns)
		repo := filepath.Join(dir, "holder-"+ns)
		if _, err := harness.Init(ctx, bin, repo, "--profile", "default"); err != nil {
			t.Fatal(err)
		}
		h, err := harness.StartDaemon(ctx, natted, repo, "--roles", "holder", "--bootstrap", boot)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop() })
		holders = append(holders, natHolder{ns: ns, bin: natted.Bin, repo: repo, d: h})
	}
	for _, h := range holders {
		h.waitCircuit(ctx, t, boot)
	}
	natQuery(ctx, t, bin, dir, public.Bin, lab.wrap(t, bin, "HA"), boot, holders)
}

// natHolder is a holder daemon running behind one of the lab's NATs.
type natHolder struct {
	ns, bin, repo string
	d             *harness.Daemon
}

// waitCircuit waits (bounded, 90 s) until the holder announces a
// /p2p-circuit address through the relay at boot.
func (h natHolder) waitCircuit(ctx context.Context, t *testing.T, boot string) {
	t.Helper()
	circuit := boot + "/p2p-circuit/p2p/" + h.d.ID
	var addrs []string
	for range 90 {
		addrs = natIDAddrs(t, ctx, h.bin, h.repo)
		for _, a := range addrs {
			if a == circuit {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("the holder behind NAT %s never announced %s; its addresses: %v\nits log:\n%s", h.ns, circuit, addrs, h.d.LogTail(3000))
}

// startPublicNodes starts the lab's four public daemons (the first one a
// relay and the bootstrap peer, all dealers, none a holder) and returns
// the bootstrap address.
func startPublicNodes(ctx context.Context, t *testing.T, bin, dir string, public harness.Options) string {
	t.Helper()
	roles := []string{"relay,dealer", "dealer", "dealer", "dealer"}
	var boot string
	for k, r := range roles {
		repo := filepath.Join(dir, fmt.Sprintf("p%d", k+1))
		if _, err := harness.Init(ctx, bin, repo, "--profile", "default"); err != nil {
			t.Fatal(err)
		}
		args := []string{"--roles", r, "--listen", fmt.Sprintf("/ip4/11.0.9.%d/tcp/4301", k+1), "--api", fmt.Sprintf("127.0.0.1:%d", 5311+k)}
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		}
		d, err := harness.StartDaemon(ctx, public, repo, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Stop() })
		if boot == "" {
			boot = fmt.Sprintf("/ip4/11.0.9.1/tcp/4301/p2p/%s", d.ID)
		}
	}
	return boot
}

// natQuery publishes the seed from an owner in the lab's internet (tbin)
// over the NATed holders and queries it from a client behind NAT A (abin):
// both one-shot commands, on repos of the test profile (they only dial
// out).
func natQuery(ctx context.Context, t *testing.T, bin, dir, tbin, abin, boot string, holders []natHolder) {
	t.Helper()
	run := func(repo string, args ...string) harness.Result {
		t.Helper()
		in := tbin
		if strings.HasSuffix(repo, "user") {
			in = abin // the client runs behind the other NAT
		}
		args = append(args, "--repo", repo, "--bootstrap", boot, "--timeout", "60s")
		res, err := harness.Run(ctx, in, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("grid %s: exit %d", strings.Join(args, " "), res.Code)
		return res
	}
	owner, user := filepath.Join(dir, "owner"), filepath.Join(dir, "user")
	for _, r := range []string{owner, user} {
		if _, err := harness.Init(ctx, bin, r); err != nil {
			t.Fatal(err)
		}
	}
	seed, err := filepath.Abs("seed.onnx")
	if err != nil {
		t.Fatal(err)
	}
	res := run(owner, "publish", seed, "--id", "natseed", "--holders", "2", "--json")
	var m struct {
		Holders []string `json:"holders"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &m) != nil {
		t.Fatalf("publish over the NATed holder: %+v\nits log:\n%s", res, holders[0].d.LogTail(3000))
	}
	for _, h := range holders {
		if !slices.Contains(m.Holders, h.d.ID) {
			t.Fatalf("holders %v, want the NATed %s among them", m.Holders, h.d.ID)
		}
	}
	res = run(user, "infer", "natseed", "--values", "5,3", "--json")
	var out struct {
		Output []float64 `json:"output"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &out) != nil || len(out.Output) != 1 || out.Output[0] != 1022 {
		t.Fatalf("query of the NATed holder: %+v\nits log:\n%s", res, holders[0].d.LogTail(3000))
	}
}

// natIDAddrs returns the addresses grid id --json lists for a running
// daemon's repo (asked inside its namespace, where its API listens).
func natIDAddrs(t *testing.T, ctx context.Context, bin, repo string) []string {
	t.Helper()
	res, err := harness.Run(ctx, bin, nil, "id", "--repo", repo, "--json")
	if err != nil || res.Code != 0 {
		return nil
	}
	var id struct {
		Addresses []string `json:"addresses"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &id); err != nil {
		t.Fatalf("grid id --json: %v: %q", err, res.Stdout)
	}
	return id.Addresses
}
