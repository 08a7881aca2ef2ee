#!/usr/bin/env bash
# Raptor interop suite: pusher-js 8.6.0 + npm pusher 5.3.4 (node --test) and PyPI pusher 3.3.4 (pytest).
# node/browser_fallback.test.mjs runs pusher-js's web build in headless Chromium (playwright-core
# driving /usr/bin/chromium, or $CHROMIUM; installed with apt-get when missing and run as root).
# The node half includes node/readme_quickstart.test.mjs, which runs README.md's Quick start
# blocks as written (its Python block under the venv below, passed as INTEROP_PYTHON).
#
# Usage: tests/interop/run.sh            (from anywhere)
#   RAPTOR_BIN=/path/to/raptor  use that binary instead of building target/debug/raptor
#   INTEROP_ONLY=node|python     run only one half (both run by default)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

log() { printf '\n=== %s\n' "$*"; }

# --- Node dependencies (npm ci only when node_modules is missing or the lockfile changed) ---
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
stamp="$HERE/node_modules/.interop-lock-sha256"
if [[ ! -d "$HERE/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  log "npm ci (tests/interop)"
  (cd "$HERE" && npm ci --no-audit --no-fund)
  echo "$lock_sum" >"$stamp"
fi

# --- Python venv (created / reinstalled only when requirements.txt changed) ---
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
venv="$HERE/.venv"
vstamp="$venv/.interop-req-sha256"
if [[ ! -x "$venv/bin/python" ]]; then
  log "python3 -m venv tests/interop/.venv"
  python3 -m venv "$venv"
fi
if [[ ! -f "$vstamp" || "$(cat "$vstamp")" != "$req_sum" ]]; then
  log "pip install -r tests/interop/requirements.txt"
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt"
  echo "$req_sum" >"$vstamp"
fi

# --- The browser for node/browser_fallback.test.mjs (as tests/dashboard/run.sh) ---
source "$REPO/tests/lib/chromium.sh"
if [[ -z "${INTEROP_ONLY:-}" || "${INTEROP_ONLY:-}" == node ]]; then
  ensure_chromium
fi

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
export INTEROP_PYTHON="$venv/bin/python"
echo "using RAPTOR_BIN=$RAPTOR_BIN"

# --- Run both halves; report every failure, exit non-zero if any failed ---
only="${INTEROP_ONLY:-}"
status=0
if [[ -z "$only" || "$only" == node ]]; then
  log "node --test tests/interop/node/"
  # Node 20 searches the directory for *.test.mjs; one test file runs at a time (2-core machines).
  node --test --test-concurrency=1 --test-reporter=spec tests/interop/node/ || status=1
fi
if [[ -z "$only" || "$only" == python ]]; then
  log "pytest tests/interop/python"
  "$venv/bin/pytest" -q -p no:cacheprovider tests/interop/python || status=1
fi

if [[ $status -ne 0 ]]; then
  log "INTEROP SUITE FAILED"
else
  log "interop suite passed"
fi
exit $status
