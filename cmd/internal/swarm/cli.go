package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// Exit codes of grid-swarm.
const (
	ExitPass        = 0   // the scenario passed
	ExitFail        = 1   // the scenario ran and failed, or could not run
	ExitUsage       = 2   // bad flags or scenario file
	ExitInterrupted = 130 // SIGINT or SIGTERM: everything started was stopped
)

const usage = `usage: grid-swarm [flags] SCENARIO

Runs a scenario (a JSON file, or the name of one under scripts/scenarios:
seed, scale, churn, churn-tolerate, wan) against a local swarm of real
"grid daemon" processes on loopback, writes OUT/result.json and PNG plots,
and prints a summary table. Every process it starts is stopped by PID on
exit, also on Ctrl-C. Exit status: 0 pass, 1 fail, 2 bad usage, 130
interrupted.

flags:
`

// cliFlags are grid-swarm's flags.
type cliFlags struct {
	grid, root, out, replot string
	nodes, holders          int
	seed                    int64
	keep, quiet             bool
}

// Main is grid-swarm's command line: it parses args (without the program
// name), runs the scenario with SIGINT/SIGTERM cancelling it, and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	var f cliFlags
	fs := flag.NewFlagSet("grid-swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&f.grid, "grid", "", "the grid binary to run (default: grid beside grid-swarm)")
	fs.StringVar(&f.root, "repo-root", "", "repository root: resolves scenario names and model files (default: found from the working directory)")
	fs.IntVar(&f.nodes, "nodes", 0, "run one swarm of N daemons instead of the scenario's instances")
	fs.IntVar(&f.holders, "holders", 0, "publish over H holders instead of the scenario's")
	fs.StringVar(&f.out, "out", "", "output directory (default: a new grid-swarm-CASE-* temp dir)")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the identities and churn events")
	fs.BoolVar(&f.keep, "keep", false, "keep the daemons' repo dirs")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&f.replot, "replot", "", "only redraw the plots and table of a result.json (into --out, default its directory)")
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitPass
		}
		return ExitUsage
	}
	if f.replot != "" {
		return replotResult(f.replot, f.out, stdout, stderr)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "grid-swarm: give exactly one SCENARIO")
		fs.Usage()
		return ExitUsage
	}
	sc, path, code := f.scenario(fs.Arg(0), stderr)
	if sc == nil {
		return code
	}
	if code := f.setDefaults(sc, stderr); code != ExitPass {
		return code
	}
	return f.run(sc, path, stdout, stderr)
}

// scenario loads the scenario named by arg with the --nodes and --holders
// overrides; on error it returns nil and the exit code.
func (f *cliFlags) scenario(arg string, stderr io.Writer) (*Scenario, string, int) {
	if f.root == "" {
		wd, _ := os.Getwd()
		f.root = findRepoRoot(wd)
	}
	path := resolveScenario(arg, f.root)
	sc, err := Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "grid-swarm: %v\n", err)
		return nil, path, ExitUsage
	}
	if f.nodes != 0 {
		sc = sc.WithNodes(f.nodes)
	}
	if f.holders != 0 {
		sc = sc.WithHolders(f.holders)
	}
	if err := sc.Validate(); err != nil {
		fmt.Fprintf(stderr, "grid-swarm: %s with --nodes/--holders: %v\n", path, err)
		return nil, path, ExitUsage
	}
	return sc, path, ExitPass
}

// setDefaults finds the grid binary and makes the output directory unless
// given; it returns ExitPass or the exit code of the failure.
func (f *cliFlags) setDefaults(sc *Scenario, stderr io.Writer) int {
	if f.grid == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "grid-swarm: --grid not given and own path unknown: %v\n", err)
			return ExitUsage
		}
		f.grid = filepath.Join(filepath.Dir(self), "grid")
	}
	if st, err := os.Stat(f.grid); err != nil || st.IsDir() {
		fmt.Fprintf(stderr, "grid-swarm: grid binary %s: not found (build it: go build -o DIR/grid ./cmd/grid)\n", f.grid)
		return ExitUsage
	}
	if f.out == "" {
		out, err := os.MkdirTemp("", "grid-swarm-"+sc.Case+"-")
		if err != nil {
			fmt.Fprintf(stderr, "grid-swarm: %v\n", err)
			return ExitFail
		}
		f.out = out
	}
	return ExitPass
}

// run runs the scenario until it ends or a signal cancels it, writes the
// result, the plots and the table, and returns the exit code.
func (f *cliFlags) run(sc *Scenario, path string, stdout, stderr io.Writer) int {
	var log io.Writer = stderr
	if f.quiet {
		log = io.Discard
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// The run is being cancelled; its deferred cleanup stops the
			// daemons. The signal stays caught until Main returns.
			fmt.Fprintln(log, "swarm: interrupted: stopping every process started")
		case <-finished:
		}
	}()
	res, runErr := RunScenario(ctx, sc, path, Options{Grid: f.grid, RepoRoot: f.root, Out: f.out, Seed: f.seed, Keep: f.keep, Log: log})
	interrupted := ctx.Err() != nil // only a signal ends this context
	close(finished)

	if p, err := res.WriteJSON(f.out); err != nil {
		fmt.Fprintf(stderr, "grid-swarm: %v\n", err)
	} else {
		fmt.Fprintf(log, "swarm: wrote %s\n", p)
	}
	files, err := WritePlots(res, f.out)
	if err != nil {
		fmt.Fprintf(stderr, "grid-swarm: %v\n", err)
	}
	for _, file := range files {
		fmt.Fprintf(log, "swarm: wrote %s\n", file)
	}
	_ = res.WriteTable(stdout)
	switch {
	case runErr == nil:
		return ExitPass
	case interrupted:
		return ExitInterrupted
	default:
		return ExitFail
	}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (grid-swarm seed --nodes 6).
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// resolveScenario maps a bare name ("seed") to scripts/scenarios/NAME.json
// under root; anything else is a path.
func resolveScenario(arg, root string) string {
	if !strings.ContainsAny(arg, "/.") {
		return filepath.Join(root, "scripts", "scenarios", arg+".json")
	}
	return arg
}

// findRepoRoot walks up from dir to the directory holding go.mod (dir if
// there is none).
func findRepoRoot(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}

// replotResult redraws the plots and the table of a saved result.
func replotResult(path, out string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "grid-swarm: --replot: %v\n", err)
		return ExitUsage
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "grid-swarm: --replot %s: %v\n", path, err)
		return ExitUsage
	}
	if out == "" {
		out = filepath.Dir(path)
	}
	files, err := WritePlots(&res, out)
	if err != nil {
		fmt.Fprintf(stderr, "grid-swarm: %v\n", err)
		return ExitFail
	}
	for _, f := range files {
		fmt.Fprintf(stderr, "swarm: wrote %s\n", f)
	}
	_ = res.WriteTable(stdout)
	return ExitPass
}
