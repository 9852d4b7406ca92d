"""Fixtures of the Python end-to-end suite: the e2e server process and python-socketio clients.

Every wait has a timeout, so a broken server fails a test instead of hanging it.
"""

import os
import queue
import re
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest
import socketio

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_BIN = Path(
    os.environ.get("SOCKETLET_E2E_SERVER")
    or REPO_ROOT / "target" / "debug" / "examples" / "e2e_server"
)
ARTIFACTS_DIR = REPO_ROOT / "tests" / "e2e" / ".artifacts"

#: Default timeout (seconds) of a single wait: an ack, an event, a connection.
WAIT_S = 5.0
#: How long the server gets to print ``LISTENING <port>``.
STARTUP_S = 10.0

TRANSPORT_SETUPS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    # The client default: long-polling first, then the upgrade to WebSocket.
    "default": None,
}


class ServerProcess:
    """A running e2e server; ``stop()`` kills it."""

    _counter = 0

    def __init__(self, port=0, label="server"):
        if not SERVER_BIN.exists():
            raise RuntimeError(
                f"e2e server binary not found at {SERVER_BIN}; build it with "
                "`cargo build -p socketlet --example e2e_server` or set SOCKETLET_E2E_SERVER"
            )
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        ServerProcess._counter += 1
        self.log_path = ARTIFACTS_DIR / f"python-{label}-{os.getpid()}-{ServerProcess._counter}.log"
        env = {"RUST_LOG": "info,socketlet=debug,socketlet_engine=debug,e2e_server=debug"}
        env.update(os.environ)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(SERVER_BIN), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        lines = queue.Queue()

        def pump():
            # Keeps draining stdout for the lifetime of the process.
            for raw in self.proc.stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + STARTUP_S
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                self.stop()
                raise RuntimeError(self._failure(f'no "LISTENING <port>" within {STARTUP_S} s'))
            if line is None:
                self.stop()
                raise RuntimeError(
                    self._failure(f"server exited before listening (code {self.proc.returncode})")
                )
            m = re.fullmatch(r"LISTENING (\d+)\s*", line)
            if m:
                self.port = int(m.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return

    def _failure(self, msg):
        self._log.flush()
        tail = self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        return f"{msg}\n--- server stderr (tail, full log: {self.log_path}) ---\n{tail}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        finally:
            self._log.close()


@pytest.fixture(scope="session")
def server():
    srv = ServerProcess(label="server")
    yield srv
    srv.stop()


@pytest.fixture(params=list(TRANSPORT_SETUPS), ids=list(TRANSPORT_SETUPS))
def setup_name(request):
    """The transport setup: runs each test that uses it once per setup."""
    return request.param


@pytest.fixture
def transports(setup_name):
    return TRANSPORT_SETUPS[setup_name]


class Events:
    """Thread-safe recorder of the events a client receives, with timed waits."""

    def __init__(self):
        self._q = queue.Queue()

    def handler(self, name):
        def record(*args):
            self._q.put((name, args))

        return record

    def get(self, name=None, timeout=WAIT_S):
        """Returns the args of the next recorded event (of ``name`` if given, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                got, args = self._q.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for event {name or '(any)'!r}"
                ) from None
            if name is None or got == name:
                return args

    def drain(self):
        """Returns (and forgets) everything recorded so far."""
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out


@pytest.fixture
def make_client(server, transports):
    """Factory of connected clients; ``make_client(connect=False)`` returns an unconnected one.

    Returns ``(client, events)``; ``events`` records the events named in ``record``
    (by default ``welcome``) on the namespaces in ``namespaces``.
    """
    clients = []

    def make(
        auth=None,
        namespaces=None,
        record=("welcome",),
        connect=True,
        url=None,
    ):
        client = socketio.Client(
            reconnection=True,
            reconnection_delay=0.1,
            reconnection_delay_max=0.2,
            randomization_factor=0,
            request_timeout=WAIT_S,
            handle_sigint=False,
        )
        clients.append(client)
        events = Events()
        for nsp in namespaces or ["/"]:
            for name in record:
                key = name if nsp == "/" else f"{nsp}:{name}"
                client.on(name, events.handler(key), namespace=nsp)
        if connect:
            client.connect(
                url or server.url,
                auth=auth,
                transports=transports,
                namespaces=namespaces or ["/"],
                wait_timeout=WAIT_S,
            )
        return client, events

    yield make
    for client in clients:
        disconnect_quietly(client)


def disconnect_quietly(client, timeout=1.0):
    """Disconnects ``client`` without letting a slow close hold up the suite.

    Over polling, python-engineio's ``disconnect()`` sends a CLOSE packet and then waits for the
    pending long-poll GET to end, which the server should answer at once. But the client can also
    lose its CLOSE packet when its write loop is still busy with a POST (the loop exits on the
    state change), and then it waits until the server's next PING (25 s by default). That is a
    client quirk, not what these tests check, so the disconnect runs in a daemon thread that is
    given ``timeout`` seconds; a slow one only shows up as a warning.
    """

    def run():
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass

    thread = threading.Thread(target=run, name="e2e-disconnect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        warnings.warn(
            f"client.disconnect() ({client.transport()}) did not finish within {timeout} s; "
            "left to finish in the background",
            stacklevel=2,
        )
