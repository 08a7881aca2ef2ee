"""The Debian package (cargo-deb, `[package.metadata.deb]` in engine/Cargo.toml): its control
fields and file list, the systemd unit and its hardening, the conffile, the maintainer
scripts, and the packaged binary serving with the packaged config."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, RaptorProc, exercise, expect_drain_close, run

UNIT = "usr/lib/systemd/system/raptor.service"
CONFIG = "etc/raptor/raptor.toml"

# Every file in the package, with its mode. Adding one is a decision: add it here too.
FILES = {
    "usr/bin/raptor": 0o755,
    CONFIG: 0o640,
    UNIT: 0o644,
    "usr/share/doc/raptor/copyright": 0o644,
    "usr/share/doc/raptor/README.md": 0o644,
    "usr/share/doc/raptor/operations.md": 0o644,
    "usr/share/doc/raptor/limits.md": 0o644,
}


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True,
                          text=True).stdout.strip()


def unit_service(deb_root: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # directive names are case-sensitive
    parser.read_string((deb_root / UNIT).read_text())
    return parser["Service"]


def test_control_fields(deb: Path) -> None:
    assert field(deb, "Package") == "raptor"
    assert field(deb, "Architecture") == "amd64"
    assert field(deb, "Section") == "net"
    assert re.fullmatch(r".+ <[^@ ]+@[^@ ]+>", field(deb, "Maintainer"))
    depends = [d.strip().split(" ")[0] for d in field(deb, "Depends").split(",")]
    assert {"adduser", "libc6", "procps"} <= set(depends), depends
    assert "change the app secret" in " ".join(field(deb, "Description").split())


def test_file_list_and_modes(deb: Path) -> None:
    """`dpkg-deb -c`: exactly FILES, owned by root, with their modes."""
    listing = run("dpkg-deb", "-c", deb).stdout.splitlines()
    files = {}
    for line in listing:
        mode, owner, _size, _date, _time, name = line.split(None, 5)
        assert owner == "0/0", line
        if mode.startswith("-"):
            files[name.removeprefix("./")] = mode
    assert set(files) == set(FILES), f"unexpected file list: {sorted(files)}"
    for name, want in FILES.items():
        assert files[name] == stat.filemode(stat.S_IFREG | want), (name, files[name])


def test_conffiles(deb_control: Path) -> None:
    assert (deb_control / "conffiles").read_text().split() == ["/" + CONFIG]


def test_packaged_files_are_the_committed_ones(deb_root: Path) -> None:
    assert (deb_root / UNIT).read_text() == (REPO / "packaging/systemd/raptor.service").read_text()
    assert (deb_root / CONFIG).read_text() == (REPO / "packaging/raptor.toml").read_text()


def test_copyright_names_the_license(deb_root: Path) -> None:
    text = (deb_root / "usr/share/doc/raptor/copyright").read_text()
    assert "License: Apache-2.0" in text


def test_unit_runs_the_packaged_binary_as_raptor(deb_root: Path) -> None:
    svc = unit_service(deb_root)
    assert svc["ExecStart"] == "/usr/bin/raptor serve --config /etc/raptor/raptor.toml"
    assert (svc["User"], svc["Group"]) == ("raptor", "raptor")
    assert svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM"


def test_unit_hardening(deb_root: Path) -> None:
    svc = unit_service(deb_root)
    want = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "LimitMEMLOCK": "infinity",  # io_uring: at least 512 KiB locked memory
    }
    for key, value in want.items():
        assert svc.get(key) == value, (key, svc.get(key))
    assert int(svc["LimitNOFILE"]) >= 65536
    # Raptor writes no file (logs go to the journal): nothing is writable to it.
    assert "ReadWritePaths" not in svc
    # The syscall filter lets io_uring through, by name (older systemd lacks it in @aio).
    allowed = svc["SystemCallFilter"].split()
    assert allowed[0] == "@system-service"
    assert {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= set(allowed)


def test_unit_reloads_with_sighup() -> None:
    """`systemctl reload raptor` sends SIGHUP, which re-reads the configuration (the engine's
    tests/reload.rs shows what it changes) and never ends the server."""
    unit = (REPO / "packaging/systemd/raptor.service").read_text()
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit


def test_unit_verifies(deb_root: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` in a root holding the host's units and the package's files:
    every directive known and valid, the binary present. It only warns about a bad directive,
    so any output fails the test."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(deb_root, root, dirs_exist_ok=True, symlinks=True)
    # ExecReload's /bin/kill, which the package's Depends (procps) brings.
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/kill", root / "bin/kill")
    r = run("systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}",
            "raptor.service")
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_unit_exposure(deb_root: Path, tmp_path: Path) -> None:
    """`systemd-analyze security`: 1.6 on systemd 252 with this unit ("OK"); 9.6 is a unit
    without hardening."""
    root = tmp_path / "root"
    shutil.copytree(deb_root, root, symlinks=True)
    r = run("systemd-analyze", "security", "--offline=yes", f"--root={root}", "raptor.service")
    m = re.search(r"Overall exposure level for raptor\.service: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def test_docs_show_the_committed_unit() -> None:
    """docs/operations.md shows packaging/systemd/raptor.service verbatim."""
    doc = (REPO / "docs/operations.md").read_text()
    unit = (REPO / "packaging/systemd/raptor.service").read_text()
    assert f"```ini\n{unit}```\n" in doc, "docs/operations.md differs from the committed unit"


def test_maintainer_scripts_parse(deb_control: Path) -> None:
    scripts = [p for p in deb_control.iterdir() if p.name in ("preinst", "postinst", "prerm", "postrm")]
    assert {p.name for p in scripts} == {"postinst", "prerm", "postrm"}
    for script in scripts:
        assert os.access(script, os.X_OK), script
        assert script.read_text().startswith("#!/bin/sh\n"), script
        r = run("sh", "-n", script)
        assert r.returncode == 0, (script, r.stderr)


def test_postinst_neither_enables_nor_starts(deb_control: Path) -> None:
    """A first install leaves the unit disabled and stopped (the placeholder secret); an
    upgrade restarts it only if it runs, and re-enables it only if it was enabled."""
    text = (deb_control / "postinst").read_text()
    assert "#DEBHELPER#" not in text
    assert "deb-systemd-invoke start" not in text
    assert "try-restart raptor.service" in text
    assert "was-enabled raptor.service" in text


def stub_run(deb_control: Path, tmp_path: Path, *, user_exists: bool,
             statoverride: bool) -> list[str]:
    """Runs the packaged postinst `configure` with adduser, getent, chown, chmod,
    dpkg-statoverride and the systemd helpers replaced by stubs that record their arguments;
    returns the calls."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "calls"
    results = {"getent": 0 if user_exists else 2, "dpkg-statoverride": 0 if statoverride else 1,
               "deb-systemd-helper": 1}
    for name in ("adduser", "getent", "chown", "chmod", "dpkg-statoverride",
                 "deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit {results.get(name, 0)}\n')
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}")
    r = run("sh", deb_control / "postinst", "configure", "", env=env)
    assert r.returncode == 0, r.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_postinst_creates_the_user_and_protects_the_config(deb_control: Path, tmp_path: Path) -> None:
    calls = stub_run(deb_control, tmp_path, user_exists=False, statoverride=False)
    adduser = [c for c in calls if c.startswith("adduser ")]
    assert len(adduser) == 1, calls
    args = adduser[0].split()
    assert {"--system", "--group", "--no-create-home"} <= set(args) and args[-1] == "raptor"
    assert "chown root:raptor /etc/raptor/raptor.toml" in calls
    assert "chmod 0640 /etc/raptor/raptor.toml" in calls
    assert not any(c.startswith(("deb-systemd-invoke", "systemctl")) for c in calls), calls


def test_postinst_keeps_an_existing_user_and_statoverride(deb_control: Path, tmp_path: Path) -> None:
    calls = stub_run(deb_control, tmp_path, user_exists=True, statoverride=True)
    assert not any(c.startswith(("adduser", "chown", "chmod")) for c in calls), calls


def test_packaged_binary(deb_root: Path) -> None:
    """Stripped (no symbol table, no debug info), and says which build it is."""
    binary = deb_root / "usr/bin/raptor"
    r = run(binary, "--version")
    assert r.returncode == 0 and re.fullmatch(r"raptor \d+\.\d+\.\d+ \(\w+\)\n", r.stdout), r
    sections = run("readelf", "-S", "-W", binary).stdout
    assert ".symtab" not in sections and ".debug_info" not in sections
    assert binary.stat().st_size < 20 * 1024 * 1024


def test_packaged_config_is_valid(deb_root: Path) -> None:
    r = run(deb_root / "usr/bin/raptor", "config", "check", deb_root / CONFIG)
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok"), r


def test_packaged_config_says_to_change_the_secret() -> None:
    text = (REPO / "packaging/raptor.toml").read_text()
    assert 'bind = "127.0.0.1:6001"' in text
    assert "CHANGE THE SECRET" in text
    assert 'secret = "change-me-before-starting"' in text


def test_packaged_binary_serves_and_drains(deb_root: Path, tmp_path: Path) -> None:
    """The packaged binary with the packaged config: /health, a subscriber, a signed publish
    that reaches it; SIGTERM sends it 4200 and exits 0."""
    server = RaptorProc(deb_root / "usr/bin/raptor", tmp_path / "raptor.log",
                        config=deb_root / CONFIG)
    ws = exercise(server.port, "1", "app-key", "change-me-before-starting")
    assert server.stop() == 0, (tmp_path / "raptor.log").read_text()
    expect_drain_close(ws)


@pytest.mark.parametrize("name", ["postinst", "prerm", "postrm"])
def test_scripts_mention_only_raptor_service(deb_control: Path, name: str) -> None:
    units = set(re.findall(r"[\w@-]+\.service", (deb_control / name).read_text()))
    assert units <= {"raptor.service"}, units


def test_install_upgrade_remove_purge(deb: Path) -> None:
    """dpkg and the maintainer scripts for real, in a throw-away overlay of this machine
    (install_in_overlay.sh): the user, the config's owner and mode, the unit left disabled,
    a changed config kept over an upgrade, remove and purge."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts and chroot)")
    r = run(REPO / "tests/packaging/install_in_overlay.sh", deb, timeout=120)
    assert r.returncode == 0 and r.stdout.endswith("ok\n"), r.stdout + r.stderr
