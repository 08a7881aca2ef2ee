#!/usr/bin/env bash
# Autobahn|Testsuite conformance of Raptor's WebSocket layer (RFC 6455), driven by kosoku
# (Autobahn's own case files in a Python 3 runner). It starts `raptor serve --ws-echo`, runs
# every case except the permessage-deflate ones (12.*, 13.*: Raptor declines the extension,
# see docs/protocol-conformance.md) against the test-only /echo endpoint, and diffs each
# case's behavior/behaviorClose against the committed tests/conformance/expected.json.
#
# Usage: tests/conformance/run.sh                 (from anywhere)
#   RAPTOR_BIN=/path/to/raptor   use that binary instead of building target/debug/raptor
#   CONFORMANCE_OUT=dir          where the reports go (default tests/conformance/results)
#   UPDATE_EXPECTED=1            rewrite expected.json from this run (reasons are kept)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

log() { printf '\n=== %s\n' "$*"; }

# --- kosoku in its own venv (reinstalled only when requirements.txt changed) ---
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
venv="$HERE/.venv"
vstamp="$venv/.conformance-req-sha256"
if [[ ! -x "$venv/bin/python" ]]; then
  log "python3 -m venv tests/conformance/.venv"
  python3 -m venv "$venv"
fi
if [[ ! -f "$vstamp" || "$(cat "$vstamp")" != "$req_sum" ]]; then
  log "pip install -r tests/conformance/requirements.txt"
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt"
  echo "$req_sum" >"$vstamp"
fi

# --- Server binary ---
if [[ -z "${RAPTOR_BIN:-}" ]]; then
  log "cargo build -p raptor-engine --bin raptor"
  cargo build -p raptor-engine --bin raptor
  RAPTOR_BIN="$REPO/target/debug/raptor"
fi
if [[ ! -x "$RAPTOR_BIN" ]]; then
  echo "RAPTOR_BIN=$RAPTOR_BIN is not an executable file" >&2
  exit 1
fi

out="${CONFORMANCE_OUT:-$HERE/results}"
rm -rf "$out"
mkdir -p "$out"

# --- Start the server with the echo endpoint on an ephemeral port ---
# (no metrics listener: its default port, 9601, may be taken by another server on this host)
log "$RAPTOR_BIN serve --bind 127.0.0.1:0 --shards 2 --metrics-bind off --ws-echo"
RAPTOR_LOG="${RAPTOR_LOG:-warn}" "$RAPTOR_BIN" serve --bind 127.0.0.1:0 --shards 2 --metrics-bind off --ws-echo \
  >"$out/server.stdout" 2>"$out/server.log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 200); do
  port="$(sed -n 's/^raptor listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out/server.stdout")"
  [[ -n "$port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "raptor exited before it was ready:" >&2
    cat "$out/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "raptor did not print its ready line within 20 s" >&2
  exit 1
fi

# --- Run the cases; the diff against expected.json decides, not kosoku's exit status ---
log "kosoku ws://127.0.0.1:$port/echo -x '12.*' -x '13.*'"
start=$SECONDS
"$venv/bin/kosoku" "ws://127.0.0.1:$port/echo" -x '12.*' -x '13.*' -o "$out/reports" \
  || echo "(kosoku reported failing cases; see the diff below)"
echo "kosoku took $((SECONDS - start)) s; reports in $out/reports/index.html"
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "raptor died during the run:" >&2
  tail -50 "$out/server.log" >&2
  exit 1
fi

log "compare with tests/conformance/expected.json"
update=()
[[ -n "${UPDATE_EXPECTED:-}" ]] && update=(--update)
"$venv/bin/python" "$HERE/compare.py" "$out/reports/index.json" "$HERE/expected.json" "${update[@]}"
