"""Shared fixtures for the Python side of the Raptor interop suite.

Publisher: PyPI `pusher` 3.3.4 (pusher-http-python), the official server SDK.
Subscriber: a minimal Pusher-protocol client on top of the `websockets` package (sync API) that
keeps every raw text frame, so tests can assert on the exact JSON the server sent.

One Raptor process is started per test module (`server` fixture, module scope).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pusher
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_ID = "1"
APP_KEY = "app-key"
APP_SECRET = "app-secret"
WAIT_S = 5.0


def raptor_bin() -> str:
    return os.environ.get("RAPTOR_BIN") or str(REPO_ROOT / "target" / "debug" / "raptor")


class Server:
    """A running `raptor serve --bind 127.0.0.1:0 --shards 2 --metrics-bind off` (the metrics
    listener's default port, 9601, would collide with other servers started meanwhile)."""

    def __init__(self, timeout: float = 20.0) -> None:
        binary = raptor_bin()
        if not os.path.exists(binary):
            raise RuntimeError(f"raptor binary not found at {binary} (set RAPTOR_BIN or build it)")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--shards", "2", "--metrics-bind", "off"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.output: list[str] = []
        self.port: int | None = None
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                self.output.append(line)
                if len(self.output) > 20000:
                    del self.output[:10000]
                if self.port is None:
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                    if m:
                        self.port = int(m.group(1))
                        ready.set()
            ready.set()  # EOF: process exited

        # Never leave an orphaned server behind, even if pytest dies before fixture teardown.
        atexit.register(self.stop)
        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready.wait(timeout)
        if self.port is None:
            self.stop()
            raise RuntimeError(
                "raptor did not print 'listening on 127.0.0.1:PORT' within "
                f"{timeout}s (exit code {self.proc.returncode}). Output:\n{''.join(self.output)}"
            )

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Subscriber:
    """Tiny Pusher protocol v7 client: connect, subscribe to public channels, read raw frames."""

    def __init__(self, port: int) -> None:
        url = f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7&client=python-interop&version=0.1.0&flash=false"
        # connect() used as a context manager (websockets >= 17 deprecates the direct form).
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, open_timeout=WAIT_S, close_timeout=2, legacy=False))
        self.frames: list[str] = []  # every raw text frame received, in order
        first = self._recv_raw(WAIT_S)
        msg = json.loads(first)
        assert msg["event"] == "pusher:connection_established", first
        assert isinstance(msg["data"], str), f"connection_established data must be a JSON string: {first}"
        data = json.loads(msg["data"])
        self.socket_id: str = data["socket_id"]
        assert re.fullmatch(r"\d+\.\d+", self.socket_id), self.socket_id
        assert isinstance(data["activity_timeout"], int), first

    def _recv_raw(self, timeout: float) -> str:
        frame = self.ws.recv(timeout=timeout)
        assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
        self.frames.append(frame)
        return frame

    def recv(self, timeout: float = WAIT_S) -> str:
        """Next frame that is not a server heartbeat (pusher:ping is answered)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame received in time")
            frame = self._recv_raw(remaining)
            msg = json.loads(frame)
            if msg.get("event") == "pusher:ping":
                self.send({"event": "pusher:pong", "data": {}})
                continue
            return frame

    def recv_json(self, timeout: float = WAIT_S) -> dict:
        return json.loads(self.recv(timeout))

    def send(self, msg: dict) -> None:
        self.ws.send(json.dumps(msg, separators=(",", ":")))

    def subscribe(self, channel: str) -> None:
        """Send pusher:subscribe (as pusher-js does) and wait for subscription_succeeded."""
        self.send({"event": "pusher:subscribe", "data": {"auth": "", "channel": channel}})
        frame = self.recv()
        msg = json.loads(frame)
        assert msg.get("event") == "pusher_internal:subscription_succeeded", frame
        assert msg.get("channel") == channel, frame

    def unsubscribe(self, channel: str) -> None:
        self.send({"event": "pusher:unsubscribe", "data": {"channel": channel}})

    def expect_nothing(self, timeout: float = 0.3) -> None:
        try:
            frame = self.recv(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {frame}")

    def close(self) -> None:
        try:
            self._stack.close()
        except ConnectionClosed:
            pass


@pytest.fixture(scope="module")
def server():
    srv = Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sdk(server) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP_ID, key=APP_KEY, secret=APP_SECRET, host="127.0.0.1", port=server.port, ssl=False
    )


@pytest.fixture
def subscribers(server):
    """Factory: subscribers() -> new connected Subscriber; all are closed after the test."""
    made: list[Subscriber] = []

    def make() -> Subscriber:
        s = Subscriber(server.port)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


_counter = itertools.count(1)


@pytest.fixture
def channel_name():
    """Factory for unique public channel names."""

    def make(prefix: str = "py") -> str:
        # Fixed-width parts: no generated name is a prefix of another (filter_by_prefix tests).
        return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10**8:08d}-{next(_counter):04d}"

    return make


def wait_until(fn, expected, timeout: float = 2.0):
    """Call fn() until it returns `expected` or timeout; return the last value (caller asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
