"""The system calls Raptor makes, seen with `strace -f -c` while it starts, serves /health, a
subscriber and a signed publish, and drains on SIGTERM; then checked against the seccomp
profile for containers and the systemd unit's SystemCallFilter. A call either of them refused
would fail with EPERM in production.

strace sees the host's C library: a container's (Debian trixie) may make a few different
calls for the same work; both sets are ordinary ones in Docker's default profile.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, RaptorProc, exercise, expect_drain_close
from test_container import IO_URING_CALLS, PROFILE

# glibc tries clone3 first and falls back to clone on ENOSYS, the answer Docker's profile
# gives on purpose (clone3's flags cannot be filtered).
FALLBACKS = {"clone3": "clone"}


@pytest.fixture(scope="module")
def syscalls(raptor_bin: Path, tmp_path_factory) -> set[str]:
    tmp = tmp_path_factory.mktemp("strace")
    summary = tmp / "strace.txt"
    server = RaptorProc(raptor_bin, tmp / "raptor.log",
                        prefix=("strace", "-f", "-c", "-o", str(summary)))
    ws = exercise(server.port, "1", "app-key", "app-secret")
    assert server.stop() == 0, (tmp / "raptor.log").read_text()
    expect_drain_close(ws)
    names = set()
    for line in summary.read_text().splitlines():
        cols = line.split()
        # "% time seconds usecs/call calls [errors] syscall"; skip headers, rules and total.
        if cols and cols[0][0].isdigit() and cols[-1] != "total":
            names.add(cols[-1])
    assert "io_uring_enter" in names, summary.read_text()
    return names


def test_io_uring_calls_are_the_verified_ones(syscalls: set[str]) -> None:
    assert {n for n in syscalls if n.startswith("io_uring")} == IO_URING_CALLS


def seccomp_allows(profile: dict, name: str) -> bool:
    """Whether Docker would let `name` through for an unprivileged x86_64 container (no
    added capabilities). Entries with argument conditions count as allowing: strace -c does
    not show arguments, and Raptor makes those calls the ordinary way (socket with AF_INET,
    AF_INET6 or AF_UNIX; clone for threads)."""
    for entry in profile["syscalls"]:
        if name not in entry["names"] or entry["action"] != "SCMP_ACT_ALLOW":
            continue
        inc, exc = entry.get("includes", {}), entry.get("excludes", {})
        if inc.get("caps"):
            continue  # needs a capability the container does not get
        if inc.get("arches") and not {"amd64", "x86_64"} & set(inc["arches"]):
            continue
        if {"amd64", "x86_64"} & set(exc.get("arches", [])):
            continue
        return True
    return False


def test_seccomp_profile_allows_every_call(syscalls: set[str]) -> None:
    assert platform.machine() == "x86_64"
    profile = json.loads(PROFILE.read_text())
    refused = {n for n in syscalls if not seccomp_allows(profile, n)}
    refused = {n for n in refused if not (n in FALLBACKS and seccomp_allows(profile, FALLBACKS[n]))}
    assert not refused, f"the seccomp profile refuses {sorted(refused)}"


def filter_set(group: str, seen: set[str] | None = None) -> set[str]:
    """The system calls in a systemd filter set, nested sets expanded."""
    seen = set() if seen is None else seen
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                         capture_output=True, text=True).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                names |= filter_set(item, seen)
        else:
            names.add(item)
    return names


def test_unit_filter_allows_every_call(syscalls: set[str]) -> None:
    unit = (REPO / "packaging/systemd/raptor.service").read_text()
    line = next(l for l in unit.splitlines() if l.startswith("SystemCallFilter="))
    allowed: set[str] = set()
    for item in line.split("=", 1)[1].split():
        allowed |= filter_set(item) if item.startswith("@") else {item}
    refused = syscalls - allowed
    assert not refused, f"the unit's SystemCallFilter refuses {sorted(refused)}"
