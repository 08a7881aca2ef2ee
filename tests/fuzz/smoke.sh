#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ (debug + AddressSanitizer) and runs
# each for a few seconds from its committed seed corpus. Fails on any crash, panic, leak or
# sanitizer report. A longer release run is described in docs/fuzzing.md.
#
# Usage: tests/fuzz/smoke.sh                 (from anywhere)
#   FUZZ_SECONDS=n     seconds per target (default 5)
#   FUZZ_TARGETS="a b" run only these targets (default: all of `cargo fuzz list`)
# New inputs found go to a scratch directory, never into fuzz/corpus/; a crashing input is
# kept under fuzz/artifacts/<target>/ and named in the output.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO/fuzz"

log() { printf '\n=== %s\n' "$*"; }

# cargo-fuzz needs nightly flags (-Z sanitizer); the pinned stable accepts them this way.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
echo "using $(cargo fuzz --version)"

log "cargo fuzz build --dev"
cargo fuzz build --dev

seconds="${FUZZ_SECONDS:-5}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for t in $targets; do
  log "fuzz $t for ${seconds}s"
  mkdir -p "$scratch/$t"
  # The first corpus directory receives new inputs; the committed seeds are only read.
  if cargo fuzz run --dev "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units)' "$scratch/$t.log" || true
  else
    tail -40 "$scratch/$t.log"
    failed+=("$t")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  log "FUZZ SMOKE FAILED: ${failed[*]} (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --dev <target> <artifact>)"
  exit 1
fi
log "fuzz smoke passed"
