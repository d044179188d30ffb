package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// repairGrace is the repair policy's grace in TestRepair; repairMargin
// bounds the time to repair beyond it (probes every grace/4, a dead
// peer's probe of up to 2 s, the session, gossip of the record).
const (
	repairGrace  = 3 * time.Second
	repairMargin = 30 * time.Second
)

// TestRepair is issue 11's end-to-end repair test with real daemons: the
// seed published with --holders 4 --tolerate 1 --repair-grace 3s, a spare
// holder joins; one holder is SIGKILLed and its repo dir deleted; the
// remaining holders repair the model onto the spare on their own within
// the grace plus a bounded margin, and it answers exactly with the new
// holder set; then `grid repair` with every holder up exits 1 naming the
// reason; `grid repair` replaces a holder killed just before (no grace)
// and `grid reshare` moves a live holder's place to a new peer. Times and
// bytes moved are logged.
func TestRepair(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end repair test with real processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
	defer cancel()
	f := newFixture(t, ctx)
	res := f.grid("publish", filepath.Join(testdata, "seed.onnx"), "--id", "seedrep", "--holders", "4", "--tolerate", "1",
		"--repair-grace", repairGrace.String(), "--json")
	var m tolModel
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &m) != nil {
		t.Fatalf("publish --repair-grace: %v", res)
	}
	f.holders[m.ID] = m.Holders
	spare, _, err := f.Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = f.WaitPeers(wctx, len(f.Repos)-1)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	f.tolQueries(m.ID, -1)
	victim := f.holderIndex(m.ID, 1)
	f.Kill(victim)
	if err := os.RemoveAll(f.Repos[victim]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	holders := f.waitHolders(m.ID, func(hs []string) bool { return slices.Contains(hs, f.IDs[spare]) }, repairGrace+repairMargin)
	took := time.Since(start)
	if holders[1] != f.IDs[spare] || slices.Contains(holders, f.IDs[victim]) {
		t.Fatalf("holders after the repair %v: want the spare %s at party 1 instead of %s", holders, f.IDs[spare], f.IDs[victim])
	}
	t.Logf("repaired onto the spare %v after the SIGKILL (grace %v); %s", took.Round(time.Millisecond), repairGrace, f.repairLogLine())
	f.holders[m.ID] = holders
	f.tolQueries(m.ID, victim)
	st := f.tolStatus(m.ID)
	for _, h := range st.Holders {
		if !h.Live || !st.Answers {
			t.Fatalf("status after the repair: %+v", st)
		}
	}
	res = f.grid("repair", m.ID)
	if res.Code != 1 || !strings.Contains(res.Stderr, "nothing to repair") || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
		t.Fatalf("grid repair with every holder up: %v", res)
	}
	// Not subtests: their cleanup restarts every stopped daemon, and the
	// first victim's repo is gone.
	f.repairByOwner(m.ID)
	f.reshareByOwner(m.ID)
}

// addSpare starts one more holder daemon and waits until everyone sees it.
func (f *fixture) addSpare() int {
	f.t.Helper()
	i, _, err := f.Add(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	if err := f.WaitPeers(ctx, len(f.Up())-1); err != nil {
		f.t.Fatal(err)
	}
	return i
}

// repairByOwner: a new spare joins, holder 2 is SIGKILLed, and the owner's
// grid repair replaces it at once (before the grace): its output names
// the replaced and the new holder; queries answer exactly.
func (f *fixture) repairByOwner(id string) {
	spare := f.addSpare()
	victim := f.holderIndex(id, 2)
	f.Kill(victim)
	res := f.grid("repair", id)
	want := fmt.Sprintf("replaced %s by %s", f.IDs[victim], f.IDs[spare])
	if res.Code != 0 || !strings.Contains(res.Stdout, want) {
		f.t.Fatalf("grid repair with holder 2 killed: %v; want %q", res, want)
	}
	f.t.Logf("grid repair: %s", strings.SplitN(res.Stdout, "\n", 2)[0])
	f.holders[id] = f.waitHolders(id, func(hs []string) bool { return hs[2] == f.IDs[spare] }, 30*time.Second)
	f.tolQueries(id, victim)
}

// reshareByOwner: a new spare joins and the owner re-shares holder 0's
// place onto it with grid reshare; the new manifest names it and queries
// answer exactly.
func (f *fixture) reshareByOwner(id string) {
	spare := f.addSpare()
	next := slices.Clone(f.holders[id])
	old := next[0]
	next[0] = f.IDs[spare]
	res := f.grid("reshare", id, "--holders", strings.Join(next, ","))
	want := fmt.Sprintf("replaced %s by %s", old, f.IDs[spare])
	if res.Code != 0 || !strings.Contains(res.Stdout, want) {
		f.t.Fatalf("grid reshare: %v; want %q", res, want)
	}
	f.t.Logf("grid reshare: %s", strings.SplitN(res.Stdout, "\n", 2)[0])
	f.holders[id] = f.waitHolders(id, func(hs []string) bool { return slices.Equal(hs, next) }, 30*time.Second)
	f.tolQueries(id, f.Index(old))
}

// waitHolders polls `grid models --json` until model id's holders satisfy
// ok, for at most d, and returns them.
func (f *fixture) waitHolders(id string, ok func([]string) bool, d time.Duration) []string {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		res, err := f.Grid(f.ctx, "models", "--json", "--timeout", "20s")
		if err != nil {
			f.t.Fatal(err)
		}
		var ms []tolModel
		if res.Code == 0 && json.Unmarshal([]byte(res.Stdout), &ms) == nil {
			if i := slices.IndexFunc(ms, func(m tolModel) bool { return m.ID == id }); i >= 0 && ok(ms[i].Holders) {
				return ms[i].Holders
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("model %s not repaired within %v: %v", id, d, res)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// repairLogLine is the initiator's "repaired" log line (its duration and
// bytes moved), from the running daemons' logs.
func (f *fixture) repairLogLine() string {
	for _, i := range f.Up() {
		for _, line := range strings.Split(f.Daemon(i).LogTail(1<<20), "\n") {
			if strings.Contains(line, "repaired") && strings.Contains(line, "bytes") {
				return line
			}
		}
	}
	return "no repaired line in the daemons' logs"
}
