#!/usr/bin/env bash
# Installs a raptor .deb for real, with dpkg and its maintainer scripts, into a throw-away
# copy-on-write view of this machine (an overlay on /, in a private mount namespace, writes
# going to a tmpfs), then upgrades, removes and purges it there. The machine itself is not
# changed: no user, no file, no dpkg record survives the run. Needs root (mounts, chroot) on
# a Debian-like system with dpkg and adduser. No systemd needed: the maintainer scripts only
# talk to systemd when it runs (/run/systemd/system), and deb-systemd-helper keeps its
# state in files.
#
# Usage: tests/packaging/install_in_overlay.sh PATH/TO/raptor.deb   (prints "ok" at the end)
set -euo pipefail

deb="$(realpath "$1")"
if [[ -z "${RAPTOR_IN_NAMESPACE:-}" ]]; then
  exec unshare --mount --propagation private --fork env RAPTOR_IN_NAMESPACE=1 "$0" "$deb"
fi

tmp="$(mktemp -d /tmp/raptor-overlay.XXXXXX)"
root="$tmp/root"
mkdir -p "$tmp/layer" "$root"
mount -t tmpfs tmpfs "$tmp/layer"
mkdir -p "$tmp/layer/upper" "$tmp/layer/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/layer/upper,workdir=$tmp/layer/work" "$root"
mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
trap 'umount -l "$root" "$tmp/layer" 2>/dev/null; rm -rf "$tmp"' EXIT

in_root() { chroot "$root" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
cp "$deb" "$root/tmp/raptor.deb"

if in_root getent passwd raptor >/dev/null; then
  fail "this machine already has a raptor user: the first install would not create one"
fi

echo "--- dpkg -i (first install)"
in_root dpkg -i /tmp/raptor.deb
entry="$(in_root getent passwd raptor)" || fail "postinst did not create the raptor user"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
[[ $uid -lt 1000 ]] || fail "raptor is not a system user (uid $uid)"
[[ "$(in_root getent group raptor | cut -d: -f3)" == "$gid" ]] || fail "no raptor group"
[[ "$home" == /nonexistent && "$shell" == */nologin ]] || fail "home $home, shell $shell"
[[ ! -e "$root/nonexistent" ]] || fail "a home directory was created"
perms="$(in_root stat -c '%U:%G %a' /etc/raptor/raptor.toml)"
[[ "$perms" == "root:raptor 640" ]] || fail "config is $perms, want root:raptor 640"
in_root runuser -u raptor -- raptor config check /etc/raptor/raptor.toml \
  || fail "the raptor user cannot use the config"
[[ -f "$root/usr/lib/systemd/system/raptor.service" ]] || fail "no unit installed"
[[ ! -e "$root/etc/systemd/system/multi-user.target.wants/raptor.service" ]] \
  || fail "the unit was enabled on a first install"
in_root dpkg-query -W -f='${Conffiles}\n' raptor | grep -q '^ /etc/raptor/raptor.toml ' \
  || fail "dpkg does not list the config as a conffile"

echo "--- dpkg -i again (an upgrade keeps a changed config)"
echo '# changed by the admin' >>"$root/etc/raptor/raptor.toml"
in_root ln -s /usr/lib/systemd/system/raptor.service \
  /etc/systemd/system/multi-user.target.wants/raptor.service   # the admin enabled it
in_root dpkg -i --force-confold /tmp/raptor.deb
[[ -L "$root/etc/systemd/system/multi-user.target.wants/raptor.service" ]] \
  || fail "the upgrade disabled the unit"
grep -q '^# changed by the admin$' "$root/etc/raptor/raptor.toml" || fail "the upgrade replaced the config"
perms="$(in_root stat -c '%U:%G %a' /etc/raptor/raptor.toml)"
[[ "$perms" == "root:raptor 640" ]] || fail "after the upgrade the config is $perms"

echo "--- dpkg -r (remove keeps the config and the user)"
in_root dpkg -r raptor
[[ ! -e "$root/usr/bin/raptor" ]] || fail "remove left the binary"
[[ -f "$root/etc/raptor/raptor.toml" ]] || fail "remove deleted the config"
in_root getent passwd raptor >/dev/null || fail "remove deleted the user"

echo "--- dpkg --purge (purge deletes the config)"
in_root dpkg --purge raptor
[[ ! -e "$root/etc/raptor" ]] || fail "purge left /etc/raptor"
[[ ! -e "$root/usr/lib/systemd/system/raptor.service" ]] || fail "purge left the unit"
echo ok
