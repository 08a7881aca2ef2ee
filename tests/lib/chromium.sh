# Sourced by the suites that drive a browser (tests/dashboard/run.sh, tests/interop/run.sh):
# makes sure $CHROMIUM (default Debian's /usr/bin/chromium; playwright's own download does
# not work here) is there, installing the package as root if it is missing.
ensure_chromium() {
  export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
  if [[ -x "$CHROMIUM" ]]; then
    return 0
  fi
  if [[ "$CHROMIUM" != /usr/bin/chromium ]]; then
    echo "CHROMIUM=$CHROMIUM is not an executable file" >&2
    exit 1
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "/usr/bin/chromium is missing; install it (as root): apt-get install -y --no-install-recommends chromium" >&2
    exit 1
  fi
  printf '\n=== %s\n' "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
