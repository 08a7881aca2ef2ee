#!/usr/bin/env bash
# Runs every Raptor test: the Rust unit and integration suites (real server processes on
# 127.0.0.1), then the interop suite with clients nobody here wrote (pusher-js, the npm and
# PyPI `pusher` SDKs), installing their packages from the committed lockfiles, then the
# Autobahn WebSocket conformance run (kosoku, pinned) diffed against its expected results,
# the packaging checks (builds the Debian package with cargo-deb, a release build, and checks
# its contents, the container files and the seccomp profile; installs cargo-deb if missing),
# and a short fuzz smoke run of every cargo-fuzz target (installs cargo-fuzz if missing).
#
# Usage: scripts/test-all.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A full run is a cold build for CI and most machines; incremental caches would only add
# about 1.5 GiB of disk (export CARGO_INCREMENTAL=1 to keep them while iterating).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "=== cargo build --workspace --all-targets"
cargo build --workspace --all-targets

echo "=== cargo test --workspace"
cargo test --workspace

echo "=== interop (tests/interop/run.sh)"
RAPTOR_BIN="$(pwd)/target/debug/raptor" tests/interop/run.sh

echo "=== dashboard (tests/dashboard/run.sh)"
RAPTOR_BIN="$(pwd)/target/debug/raptor" tests/dashboard/run.sh

echo "=== conformance (tests/conformance/run.sh)"
RAPTOR_BIN="$(pwd)/target/debug/raptor" tests/conformance/run.sh

echo "=== packaging (tests/packaging/run.sh)"
tests/packaging/run.sh

echo "=== fuzz smoke (tests/fuzz/smoke.sh)"
tests/fuzz/smoke.sh

echo "=== disk used by build outputs"
du -sh target fuzz/target 2>/dev/null || true
echo "=== all tests passed"
