"""Shared fixtures of the packaging checks (tests/packaging/run.sh builds the package first).

`PACKAGING_DEB` names the .deb to check; it is unpacked once (`deb_root`: the files,
`deb_control`: the control files). The packaged binary is the one every run uses, unless
`RAPTOR_BIN` names another. `RaptorProc` starts it on an ephemeral loopback port and
`exercise` drives one publish to one WebSocket subscriber through it, with the standard
library only (a hand-made WebSocket client and a signed HTTP API call), so the checks need
no SDK.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    """Runs a command, capturing its output as text; does not raise on a non-zero exit."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def deb() -> Path:
    path = os.environ.get("PACKAGING_DEB")
    if not path:
        pytest.fail("PACKAGING_DEB is not set: run tests/packaging/run.sh, which builds the package")
    return Path(path)


@pytest.fixture(scope="session")
def deb_root(deb: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deb-root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


@pytest.fixture(scope="session")
def deb_control(deb: Path, tmp_path_factory) -> Path:
    control = tmp_path_factory.mktemp("deb-control")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    return control


@pytest.fixture(scope="session")
def raptor_bin(deb_root: Path) -> Path:
    return Path(os.environ.get("RAPTOR_BIN") or deb_root / "usr/bin/raptor")


class RaptorProc:
    """`[prefix...] raptor serve --shards 2 --no-pin [--config FILE]` on 127.0.0.1:0
    (RAPTOR_BIND, which wins over the file), with the metrics listener off (its fixed default port would collide with other servers).
    `prefix` puts a tracer in front (strace)."""

    def __init__(self, binary: Path, log: Path, config: Path | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.prefix_len = len(prefix)
        cmd = [*prefix, str(binary), "serve", "--shards", "2", "--no-pin"]
        if config is not None:
            cmd += ["--config", str(config)]
        env = dict(os.environ, RAPTOR_BIND="127.0.0.1:0", RAPTOR_METRICS_BIND="off",
                   RAPTOR_LOG="warn")
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"),
                                     env=env, text=True)
        atexit.register(self._kill_if_running)  # a failed test leaves no server behind
        self.port = self._wait_port()

    def _kill_if_running(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(self.server_pid(), signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()

    def _wait_port(self, timeout: float = 20.0) -> int:
        """The port of the `raptor listening on 127.0.0.1:PORT` line. A thread keeps reading
        stdout (so raptor never blocks on it) and the wait is bounded (a hung start fails
        the test instead of the run)."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._kill_if_running()
                raise AssertionError(f"raptor did not listen within {timeout}s") from None
            if line is None:
                raise AssertionError(f"raptor exited before listening:\n{self.log.read_text()}")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                return int(m.group(1))

    def server_pid(self) -> int:
        """raptor's pid: the process started, or with a prefix, its child (a tracer that
        gets SIGTERM itself would detach and leave raptor running)."""
        if self.prefix_len == 0:
            return self.proc.pid
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # the field after the state: the parent
                return int(stat_file.parent.name)
        raise AssertionError("no raptor process under the tracer")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM to raptor (the drain), then the exit code of the process started (a
        tracer exits with its tracee's code)."""
        os.kill(self.server_pid(), signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_if_running()
            raise AssertionError(f"raptor did not exit within {timeout}s of SIGTERM") from None


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def signed_publish(port: int, app_id: str, key: str, secret: str, channel: str,
                   event: str, data: str) -> int:
    """POST /apps/{id}/events, signed as the Pusher HTTP API specifies."""
    body = json.dumps({"name": event, "channels": [channel], "data": data}).encode()
    path = f"/apps/{app_id}/events"
    params = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    query = "&".join(f"{k}={params[k]}" for k in sorted(params))
    to_sign = f"POST\n{path}\n{query}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", f"{path}?{query}&auth_signature={signature}", body,
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class WsClient:
    """Just enough RFC 6455 for one subscriber: the handshake, masked text frames out,
    unmasked frames in."""

    def __init__(self, port: int, key: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /app/{key}?protocol=7&client=packaging-check&version=1 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._read()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload)."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._take(2), "big")
        elif n == 127:
            n = int.from_bytes(self._take(8), "big")
        return b0 & 0x0F, self._take(n)

    def recv_json(self) -> dict:
        opcode, payload = self.recv()
        assert opcode == 1, f"expected a text frame, got opcode {opcode}: {payload!r}"
        return json.loads(payload)

    def send_json(self, msg: dict) -> None:
        payload = json.dumps(msg).encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()


def exercise(port: int, app_id: str, key: str, secret: str) -> WsClient:
    """/health, one subscriber, one signed publish that reaches it. Returns the subscriber,
    still connected (a drain then sends it 4200)."""
    status, body = http_get(port, "/health")
    assert (status, json.loads(body)) == (200, {"ok": True})
    ws = WsClient(port, key)
    assert ws.recv_json()["event"] == "pusher:connection_established"
    ws.send_json({"event": "pusher:subscribe", "data": {"channel": "packaging-check"}})
    assert ws.recv_json()["event"] == "pusher_internal:subscription_succeeded"
    assert signed_publish(port, app_id, key, secret, "packaging-check", "hello", '{"n":1}') == 200
    got = ws.recv_json()
    assert (got["event"], got["channel"], got["data"]) == ("hello", "packaging-check", '{"n":1}')
    return ws


def expect_drain_close(ws: WsClient) -> None:
    """After SIGTERM: a close frame with code 4200."""
    opcode, payload = ws.recv()
    assert opcode == 8 and int.from_bytes(payload[:2], "big") == 4200, (opcode, payload)
    ws.close()
