#!/usr/bin/env bash
# The browser client's tests in headless Chromium (cmd/grid/web): checks
# that the committed bundle is up to date (build-web.sh --check), runs the
# client's unit tests in Node (fixed point, sharing, input files, against
# the Go code's vectors), then the Go tests that start real daemons on loopback and drive the page with
# puppeteer-core (GRID_BROWSER_TEST=1 go test -run TestBrowser ./cmd/grid/web):
# the seed's 1022, the digits MLP and CNN, the page's errors, the holders'
# view of a browser query, and latency next to the CLI's.
#
#   scripts/test-browser.sh [--screenshot FILE.png] [--figures FILE.json]
#
# Needs Node.js, npm and Debian's chromium (apt-get install -y nodejs npm
# chromium; CHROMIUM=/path overrides /usr/bin/chromium). Every process it
# starts (daemons, node, Chromium) is stopped by the test, by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shot="" figures=""
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshot) shot="$(realpath -m "$2")"; shift 2 ;;
    --figures) figures="$(realpath -m "$2")"; shift 2 ;;
    *) echo "usage: $0 [--screenshot FILE.png] [--figures FILE.json]" >&2; exit 2 ;;
  esac
done
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "test-browser: $chromium is missing (apt-get install -y chromium, or set CHROMIUM)" >&2
  exit 2
fi
"$root/scripts/build-web.sh" --check
(cd "$root/cmd/grid/web" && node --test test/units.test.mjs)
cd "$root"
GRID_BROWSER_TEST=1 CHROMIUM="$chromium" GRID_BROWSER_SCREENSHOT="$shot" GRID_BROWSER_FIGURES="$figures" \
  go test -count=1 -v -timeout 15m -run 'TestBrowser' ./cmd/grid/web/
