#!/usr/bin/env bash
# Raptor dashboard tests: /dashboard in headless Chromium (playwright-core 1.65.1 driving
# Debian's chromium) against a real three-node cluster, the admin API's access rules over
# plain HTTP, and docs/grafana/raptor.json against a real server's /metrics.
# Screenshots of every view go to tests/dashboard/screenshots/.
#
# Usage: tests/dashboard/run.sh          (from anywhere)
#   RAPTOR_BIN=/path/to/raptor  use that binary instead of building target/debug/raptor
#   CHROMIUM=/path/to/chromium  use that browser instead of /usr/bin/chromium
#
# The dashboard's server-CPU cost is measured by hand: node tests/dashboard/cost.mjs
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

log() { printf '\n=== %s\n' "$*"; }

# --- Node dependencies (npm ci only when node_modules is missing or the lockfile changed) ---
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
stamp="$HERE/node_modules/.dashboard-lock-sha256"
if [[ ! -d "$HERE/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  log "npm ci (tests/dashboard)"
  (cd "$HERE" && npm ci --no-audit --no-fund)
  echo "$lock_sum" >"$stamp"
fi

# --- The browser: Debian's chromium (playwright's own download does not work here) ---
source "$REPO/tests/lib/chromium.sh"
ensure_chromium
"$CHROMIUM" --version

# --- Server binary ---
if [[ -z "${RAPTOR_BIN:-}" ]]; then
  log "cargo build -p raptor-engine --bin raptor"
  cargo build -p raptor-engine --bin raptor
  export RAPTOR_BIN="$REPO/target/debug/raptor"
fi
if [[ ! -x "$RAPTOR_BIN" ]]; then
  echo "RAPTOR_BIN=$RAPTOR_BIN is not an executable file" >&2
  exit 1
fi
export RAPTOR_BIN
echo "using RAPTOR_BIN=$RAPTOR_BIN"

# --- The tests, one file at a time (2-core machines), each bounded ---
log "node --test tests/dashboard/*.test.mjs"
status=0
node --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec \
  "$HERE/access.test.mjs" "$HERE/grafana.test.mjs" "$HERE/dashboard.test.mjs" || status=1

if [[ $status -ne 0 ]]; then
  log "DASHBOARD TESTS FAILED"
else
  log "dashboard tests passed (screenshots in tests/dashboard/screenshots/)"
fi
exit $status
