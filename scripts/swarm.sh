#!/usr/bin/env bash
# Run a local swarm scenario against real grid daemons on loopback.
#
#   scripts/swarm.sh SCENARIO [--nodes N] [--holders H] [--out DIR] [--seed S] [--keep] [--quiet]
#
# SCENARIO is seed, scale, churn, churn-tolerate, wan (scripts/scenarios/NAME.json) or a path
# to a scenario file. The script builds grid and grid-swarm into a fresh
# temporary directory, runs the scenario (result.json and PNG plots go to
# --out, a summary table to stdout) and exits with grid-swarm's status:
# 0 pass, 1 fail, 2 bad usage, 130 interrupted. Every process started is
# stopped by PID, also on Ctrl-C. See docs/SWARMS.md.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 ]]; then
	usage >&2
	exit 2
fi
if [[ "$1" == "-h" || "$1" == "--help" ]]; then
	usage
	exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(mktemp -d "${TMPDIR:-/tmp}/grid-swarm-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT

(cd "$root" && go build -o "$bin/grid" ./cmd/grid && go build -o "$bin/grid-swarm" ./cmd/grid-swarm)

status=0
"$bin/grid-swarm" --grid "$bin/grid" --repo-root "$root" "$@" || status=$?
exit "$status"
