"""The container files, checked without a Docker daemon: the Dockerfile (hadolint, and its
structure through dockerfile-parse), .dockerignore, the HEALTHCHECK command run against a
real server, and the seccomp profile against Docker's default one."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from conftest import REPO, RaptorProc, run

PROFILE = REPO / "packaging/docker/seccomp-io_uring.json"

# The io_uring system calls glommio 0.9 makes, through the liburing it vendors
# (liburing/src/syscall.c: __sys_io_uring_setup, __sys_io_uring_enter2 and
# __sys_io_uring_register). Seen all three, and no other io_uring call, with
# `strace -f -c raptor serve` (test_syscalls.py checks that on every run).
IO_URING_CALLS = {"io_uring_setup", "io_uring_enter", "io_uring_register"}

# moby/profiles seccomp/default.json at commit 3c28324314729dbade8287e868eef6338c42807a
# (May 2026): sha256 of its JSON with sorted keys and no whitespace. The committed profile is
# that plus one entry; bumping the base means replacing both (docs/operations.md, "Container").
UPSTREAM_SHA256 = "9da637d2ab0a204fcbd91bd88f1be9e004a3acab61c571a9f5b8870e588a17d2"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is not in the virtualenv (tests/packaging/requirements.txt)"
    return found


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    assert parser.content  # read it now
    return parser


def stages(df: DockerfileParser) -> list[list[dict]]:
    """The instructions, split at each FROM."""
    out: list[list[dict]] = []
    for ins in df.structure:
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def only(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_hadolint() -> None:
    r = run(hadolint(), "--no-color", REPO / "Dockerfile")
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_multi_stage_with_pinned_bases(dockerfile: DockerfileParser) -> None:
    parts = stages(dockerfile)
    assert len(parts) == 2, "a build stage and a runtime stage"
    build_from, runtime_from = (only(p, "FROM")[0] for p in parts)
    assert build_from.endswith(" AS build")
    # Exact versions: the toolchain's full version, a dated Debian snapshot; never latest.
    build_image = build_from.split()[0]
    assert re.fullmatch(r"rust:\d+\.\d+\.\d+-(\w+)", build_image), build_image
    assert re.fullmatch(r"debian:(\w+)-\d{8}-slim", runtime_from), runtime_from
    assert "latest" not in build_from + runtime_from
    # The runtime's Debian release is the builder's (the same glibc).
    assert build_image.rsplit("-", 1)[1] == runtime_from.split(":")[1].split("-")[0]


def test_builder_uses_the_pinned_toolchain(dockerfile: DockerfileParser) -> None:
    toolchain = (REPO / "rust-toolchain.toml").read_text()
    channel = re.search(r'^channel\s*=\s*"([^"]+)"', toolchain, re.M).group(1)
    build_image = only(stages(dockerfile)[0], "FROM")[0].split()[0]
    assert build_image.startswith(f"rust:{channel}-"), (build_image, channel)
    run_lines = " ".join(only(stages(dockerfile)[0], "RUN"))
    assert "cargo build --release --locked -p raptor-engine --bin raptor" in run_lines


def test_runtime_stage(dockerfile: DockerfileParser) -> None:
    runtime = stages(dockerfile)[1]
    users = only(runtime, "USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, users
    assert only(runtime, "EXPOSE") == ["6001"]
    copies = only(runtime, "COPY")
    assert "--from=build /out/raptor /usr/bin/raptor" in copies
    assert any(c.endswith("packaging/raptor.toml /etc/raptor/raptor.toml") for c in copies)
    assert json.loads(only(runtime, "ENTRYPOINT")[0]) == ["/usr/bin/raptor"]
    assert json.loads(only(runtime, "CMD")[0]) == ["serve", "--config", "/etc/raptor/raptor.toml"]
    env = " ".join(only(runtime, "ENV"))
    assert "RAPTOR_BIND=0.0.0.0:6001" in env
    # The USER line comes after everything that needs root.
    names = [i["instruction"] for i in runtime]
    assert names.index("USER") > max(i for i, n in enumerate(names) if n in ("RUN", "COPY"))


def test_dockerignore() -> None:
    """Build outputs stay out of the context; what the build needs stays in."""
    patterns = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    for needed in ("target/", "fuzz/target/", "rust-toolchain.toml"):
        assert needed in patterns, needed
    for kept in ("Cargo.toml", "Cargo.lock", "engine", "cluster", "packaging", ".git"):
        assert not any(p.rstrip("/") == kept or p.startswith(kept + "/") for p in patterns), kept


def healthcheck_command(dockerfile: DockerfileParser) -> list[str]:
    value = only(stages(dockerfile)[1], "HEALTHCHECK")
    assert len(value) == 1
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", value[0])
    assert m, value[0]
    return json.loads(m.group(1))


def test_healthcheck_probes_health(dockerfile: DockerfileParser, raptor_bin: Path,
                                   tmp_path: Path) -> None:
    """The HEALTHCHECK command itself, on the port the test server got: success while it
    serves, failure once nothing listens."""
    cmd = healthcheck_command(dockerfile)
    assert cmd[:2] == ["bash", "-c"] and "/dev/tcp/127.0.0.1/6001" in cmd[2] and "/health" in cmd[2]
    server = RaptorProc(raptor_bin, tmp_path / "raptor.log")
    try:
        probe = [cmd[0], cmd[1], cmd[2].replace("/6001", f"/{server.port}")]
        r = run(*probe, timeout=10)
        assert r.returncode == 0, r
    finally:
        assert server.stop() == 0
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = run(cmd[0], cmd[1], cmd[2].replace("/6001", f"/{free}"), timeout=10)
    assert r.returncode != 0


def profile() -> dict:
    return json.loads(PROFILE.read_text())


def test_seccomp_profile_is_docker_default_plus_io_uring() -> None:
    p = profile()
    ours = [s for s in p["syscalls"] if set(s["names"]) & IO_URING_CALLS]
    assert len(ours) == 1, "one entry adds io_uring"
    entry = ours[0]
    assert set(entry["names"]) == IO_URING_CALLS and len(entry["names"]) == 3
    assert entry["action"] == "SCMP_ACT_ALLOW"
    assert not {"args", "includes", "excludes"} & set(entry), "unconditional"
    upstream = dict(p, syscalls=[s for s in p["syscalls"] if s is not entry])
    canonical = json.dumps(upstream, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == UPSTREAM_SHA256, (
        "everything but the io_uring entry must be Docker's default profile, unchanged")


def test_seccomp_profile_keeps_the_default_action() -> None:
    p = profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert "SCMP_ARCH_X86_64" in {a["architecture"] for a in p["archMap"]}


def test_seccomp_profile_is_tab_indented_json() -> None:
    """Written as `json.dumps(profile, indent="\\t")`, like the upstream file, so a diff
    against upstream shows only the added entry."""
    text = PROFILE.read_text()
    assert text == json.dumps(json.loads(text), indent="\t") + "\n"
