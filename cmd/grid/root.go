package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Environment variables the grid command reads.
const (
	envPath      = "GRID_PATH"      // repo dir when --repo is not given
	envBootstrap = "GRID_BOOTSTRAP" // comma-separated bootstrap multiaddrs for client commands
)

// cli holds what every command shares: the process's streams, its
// environment and the global flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	repoFlag string // --repo
}

// run executes the grid command line args and returns the exit code. It is
// main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := c.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	msg := commaShapes(oneLine(err.Error()))
	if code == exitUsage && cmd != nil && isCobraError(err) {
		msg += fmt.Sprintf(` (see "%s --help")`, cmd.CommandPath())
	}
	if strings.Contains(msg, "unsupported op ") && !strings.Contains(msg, "grid ops") {
		msg += " (" + opsHint + ")"
	}
	fmt.Fprintf(stderr, "grid: %s\n", msg)
	return code
}

// isCobraError reports whether err came from cobra's own parsing (flags,
// argument counts, unknown commands) rather than from a command.
func isCobraError(err error) bool {
	var ee *exitError
	return !errors.As(err, &ee)
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "grid",
		Short: "Private inference on secret-shared models over a peer-to-peer network",
		Long: `grid publishes neural networks whose weights are secret-shared across holder
nodes, and runs inference on private input: only the client sees the answer.

Repo dir: --repo, else $GRID_PATH, else ~/.grid. Client commands (publish,
models, infer, unpublish) run as their own libp2p peer with the repo's
identity (create it with "grid init") and join the network through
--bootstrap, else $GRID_BOOTSTRAP (comma-separated), else the repo's config.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// No positional args on the root: "grid foo" is an unknown command.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.PersistentFlags().StringVar(&c.repoFlag, "repo", "", "repo dir (default $GRID_PATH, else ~/.grid)")

	root.AddCommand(
		c.initCmd(),
		c.daemonCmd(),
		c.idCmd(),
		c.peersCmd(),
		c.publishCmd(),
		c.modelsCmd(),
		c.statusCmd(),
		c.inferCmd(),
		c.unpublishCmd(),
		c.dealersCmd(),
		c.repairCmd(),
		c.reshareCmd(),
		c.demoCmd(),
		c.versionCmd(),
		c.opsCmd(),
		c.configCmd(),
		c.bootstrapCmd(),
		c.shutdownCmd(),
	)
	// grid --version prints what grid version does.
	var showVersion bool
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (see grid version)")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if showVersion {
			writeVersion(c.stdout, buildVersion())
			return nil
		}
		return cmd.Help()
	}
	return root
}

// runE adapts a command body: errors it returns exit with code 1 unless
// they already carry a code (usageErrorf, badInput).
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: exitFailure, err: err}
	}
}

// repoDir resolves the repo dir: --repo, else $GRID_PATH, else ~/.grid.
func (c *cli) repoDir() (string, error) {
	if c.repoFlag != "" {
		return c.repoFlag, nil
	}
	if p := c.getenv(envPath); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home dir for the default repo (pass --repo or set $%s): %w", envPath, err)
	}
	return filepath.Join(home, ".grid"), nil
}

// bootstrapFrom resolves client bootstrap addresses: the flag, else
// $GRID_BOOTSTRAP, else nil (the repo's config then applies).
func (c *cli) bootstrapFrom(flag []string) []string {
	if len(flag) > 0 {
		return splitList(flag)
	}
	if env := c.getenv(envBootstrap); env != "" {
		return splitList([]string{env})
	}
	return nil
}

// splitList splits comma-separated items and drops empty ones, so that
// repeated flags and comma lists both work.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// addJSONFlag registers --json on cmd.
func addJSONFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print the result as JSON")
}
