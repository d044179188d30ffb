#!/usr/bin/env bash
# Rebuilds the browser client (cmd/grid/web): installs its npm packages
# from package-lock.json when they are missing or older than the lockfile,
# type-checks the TypeScript, regenerates src/pb/ from node/pb/grid.proto,
# discovery/pb/manifest.proto and proto/kad.proto, and bundles dist/ with
# esbuild (embedded in the grid binary: commit it).
#
#   scripts/build-web.sh           rebuild src/pb/ and dist/
#   scripts/build-web.sh --check   fail (exit 1) when the committed src/pb/
#                                  or dist/ differ from what the sources give
#
# Needs Node.js and npm (Debian: apt-get install -y nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/../cmd/grid/web"
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  echo "build-web: node and npm are needed (apt-get install -y nodejs npm)" >&2
  exit 2
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx --no-install tsc -p .
node build.mjs "$@"
