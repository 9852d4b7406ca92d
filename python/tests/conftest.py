"""Fixtures of the socketlet package's tests: the real ``socketlet`` binary, started per test
module on a free port, and python-socketio clients connected to it.

The binary is ``$SOCKETLET_BIN``, else ``<repo>/target/debug/socketlet`` (``cargo build -p
socketlet-cli``). Without it the tests that need it are skipped, unless ``SOCKETLET_BIN`` is set
(then a missing binary is a failure). Every wait has a timeout.
"""

import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Default timeout (seconds) of one wait.
WAIT_S = 5.0


def socketlet_bin():
    """The socketlet binary, or None (the tests that need it then skip)."""
    explicit = os.environ.get("SOCKETLET_BIN")
    path = Path(explicit) if explicit else REPO_ROOT / "target" / "debug" / "socketlet"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if explicit:
        pytest.fail(f"SOCKETLET_BIN={explicit} is not an executable file")
    return None


class Socketlet:
    """A ``socketlet`` process on a free port of 127.0.0.1 (``url``), its stderr in a log file.

    ``wait_line(pattern)`` waits for a line of its stdout; ``stop()`` kills it.
    """

    def __init__(self, *args, log_dir):
        binary = socketlet_bin()
        if binary is None:
            pytest.skip("no socketlet binary (cargo build -p socketlet-cli, or set SOCKETLET_BIN)")
        self.log = tempfile.NamedTemporaryFile(
            prefix="socketlet-", suffix=".log", dir=log_dir, delete=False
        )
        self.proc = subprocess.Popen(
            [str(binary), "--addr", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "RUST_LOG": "info"},
        )
        self._lines = queue.Queue()
        self.lines = []

        def pump():
            for raw in self.proc.stdout:
                self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        m = self.wait_line(r"socketlet listening on http://127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_line(self, pattern, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                self.stop()
                raise AssertionError(self._tail(f"no line matching {pattern!r} in {timeout} s"))
            if line is None:
                self.stop()
                raise AssertionError(self._tail(f"socketlet exited (code {self.proc.returncode})"))
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def _tail(self, msg):
        self.log.flush()
        tail = Path(self.log.name).read_bytes()[-3000:].decode("utf-8", "replace")
        return f"{msg}\n--- socketlet's log ({self.log.name}) ---\n{tail}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def start_socketlet(tmp_path):
    """Factory: ``start_socketlet(*flags)`` starts the binary (its log in the test's tmp_path);
    all are stopped after the test."""
    started = []

    def start(*args):
        server = Socketlet(*args, log_dir=tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Recorder:
    """The events a python-socketio client received, with timed waits."""

    def __init__(self):
        self._q = queue.Queue()

    def handler(self, name):
        return lambda *args: self._q.put((name, args))

    def get(self, name, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            try:
                got, args = self._q.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no {name!r} event within {timeout} s") from None
            if got == name:
                return args

    def none(self, name, settle=0.5):
        """Asserts that no ``name`` event came within ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                got, args = self._q.get(timeout=remaining)
            except queue.Empty:
                return
            assert got != name, f"unexpected {name!r} event: {args!r}"


@pytest.fixture
def connect():
    """Factory: ``connect(url, record=(...), handlers={...}, auth=None)`` returns a connected
    python-socketio client and the recorder of its events; all disconnect after the test."""
    socketio = pytest.importorskip("socketio")
    clients = []

    def make(url, record=(), handlers=None, auth=None, transports=("websocket",)):
        client = socketio.Client(reconnection=False, request_timeout=WAIT_S)
        recorder = Recorder()
        for name in (*record, "disconnect"):
            client.on(name, recorder.handler(name))
        for name, fn in (handlers or {}).items():
            client.on(name, fn)
        client.connect(url, auth=auth, transports=list(transports), wait_timeout=WAIT_S)
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass
