package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/gridmpc/grid/discovery"
	"github.com/gridmpc/grid/node"
)

// version is grid's release version; a release build sets it with
// -ldflags "-X main.version=v1.2.3".
var version = "0.1.0-dev"

// versionView is what grid version prints (--json).
type versionView struct {
	Version   string            `json:"version"`
	Commit    string            `json:"commit"`
	Modified  bool              `json:"modified,omitempty"`
	Go        string            `json:"go"`
	Platform  string            `json:"platform"`
	Protocols map[string]string `json:"protocols"`
}

// buildVersion reads the version, the commit (vcs.revision, stamped by go
// build in a git checkout; "unknown" under go run or go test) and the
// protocol versions this build speaks.
func buildVersion() versionView {
	v := versionView{
		Version: version, Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Protocols: map[string]string{
			"shares":    string(node.ProtoShares),
			"infer":     string(node.ProtoInfer),
			"mpc":       string(node.ProtoMPC),
			"dealer":    string(node.ProtoDealer),
			"plain":     string(node.ProtoPlain),
			"repair":    string(node.ProtoRepair),
			"manifests": discovery.SyncProtocol,
			"dht":       string(discovery.DHTPrefix) + "/kad/1.0.0",
			"topic":     discovery.Topic,
			"manifest":  discovery.ManifestCodec,
		},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

// protocolOrder is the order grid version lists the protocols in.
var protocolOrder = []string{"shares", "infer", "mpc", "dealer", "plain", "repair", "manifests", "dht", "topic", "manifest"}

func writeVersion(w io.Writer, v versionView) {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "grid %s\ncommit %s\ngo %s %s\n", v.Version, commit, v.Go, v.Platform)
	for _, k := range protocolOrder {
		fmt.Fprintf(w, "protocol %-9s %s\n", k, v.Protocols[k])
	}
}

func (c *cli) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print grid's version, commit, Go version and protocol versions",
		Long: `Print grid's version, the commit it was built from (vcs.revision; "unknown"
under "go run"), the Go version and platform, and the protocol IDs this
build speaks: two nodes interoperate when their protocols match. "grid
--version" prints the same.`,
		Args: cobra.NoArgs,
		RunE: runE(func(*cobra.Command, []string) error {
			v := buildVersion()
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			writeVersion(c.stdout, v)
			return nil
		}),
	}
	addJSONFlag(cmd.Flags(), &asJSON)
	return cmd
}
