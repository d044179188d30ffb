package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestVersion checks grid version, grid --version and grid version --json.
func TestVersion(t *testing.T) {
	code, text, stderr := runCLI(t, nil, "version")
	if code != 0 || stderr != "" {
		t.Fatalf("grid version: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"grid " + version + "\n", "\ncommit ", "\ngo " + runtime.Version() + " ",
		"\nprotocol infer     /grid/infer/1.0.0\n", "\nprotocol mpc       /grid/mpc/1.0.0\n", "\nprotocol dht       /grid/kad/1.0.0\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("grid version printed %q, lacks %q", text, want)
		}
	}
	code, flag, _ := runCLI(t, nil, "--version")
	if code != 0 || flag != text {
		t.Errorf("grid --version: exit %d, %q; want grid version's %q", code, flag, text)
	}
	code, js, _ := runCLI(t, nil, "version", "--json")
	var v versionView
	if code != 0 || json.Unmarshal([]byte(js), &v) != nil || v.Version != version || v.Commit == "" ||
		v.Go != runtime.Version() || v.Protocols["shares"] != "/grid/shares/1.0.0" {
		t.Errorf("grid version --json: exit %d, %q", code, js)
	}
}

// TestMain runs the grid command itself when GRID_TEST_MAIN is set: the
// test binary is then a grid process, whose real stderr tests can read
// (library loggers write to the process's stderr, not to run's).
func TestMain(m *testing.M) {
	if os.Getenv("GRID_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// gridProcess runs the test binary as grid with args and returns its exit
// code, stdout and stderr.
func gridProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GRID_TEST_MAIN=1", "GOLOG_LOG_LEVEL=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}
