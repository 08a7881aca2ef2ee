#!/usr/bin/env bash
# Packaging checks, no Docker daemon or systemd needed: builds the Debian package with
# cargo-deb (a release build) and checks what is in it (file list, control fields, conffile,
# maintainer scripts, the systemd unit and its hardening, the packaged binary serving with
# the packaged config); lints the Dockerfile (hadolint) and checks its structure, the
# .dockerignore, the HEALTHCHECK command and the seccomp profile; and checks that every
# system call Raptor makes passes the seccomp profile and the unit's SystemCallFilter.
# Installs what it needs: cargo-deb (pinned) with cargo, dpkg/systemd/strace/binutils from
# Debian if missing, Python packages into tests/packaging/.venv.
#
# Usage: tests/packaging/run.sh            (from anywhere)
#   PACKAGING_DEB=/path/to/raptor.deb  check that package instead of building one
#   RAPTOR_BIN=/path/to/raptor         run that binary in the server checks (default: the
#                                      packaged one)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

log() { printf '\n=== %s\n' "$*"; }

# --- Tools ---
CARGO_DEB_VERSION=3.8.0
if [[ "$(cargo deb --version 2>/dev/null)" != *" $CARGO_DEB_VERSION"* ]]; then
  log "cargo install cargo-deb --version $CARGO_DEB_VERSION --locked"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
echo "using cargo-deb $(cargo deb --version)"

missing=()
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v strace >/dev/null || missing+=(strace)
command -v readelf >/dev/null || missing+=(binutils)
if [[ ${#missing[@]} -gt 0 ]]; then
  log "apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Python venv (created / reinstalled only when requirements.txt changed) ---
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
venv="$HERE/.venv"
vstamp="$venv/.packaging-req-sha256"
if [[ ! -x "$venv/bin/python" ]]; then
  log "python3 -m venv tests/packaging/.venv"
  python3 -m venv "$venv"
fi
if [[ ! -f "$vstamp" || "$(cat "$vstamp")" != "$req_sum" ]]; then
  log "pip install -r tests/packaging/requirements.txt"
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt"
  echo "$req_sum" >"$vstamp"
fi

# --- The package ---
if [[ -z "${PACKAGING_DEB:-}" ]]; then
  log "cargo deb -p raptor-engine --locked (release build)"
  started=$SECONDS
  # cargo-deb prints the path of the package on stdout, Cargo's progress on stderr.
  PACKAGING_DEB="$(cargo deb -p raptor-engine --locked | tail -n 1)"
  echo "built $PACKAGING_DEB ($(du -h "$PACKAGING_DEB" | cut -f1)) in $((SECONDS - started)) s"
fi
export PACKAGING_DEB

log "pytest tests/packaging"
"$venv/bin/pytest" -q -p no:cacheprovider "$HERE"
