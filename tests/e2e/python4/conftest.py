"""Fixtures of the python-socketio 4.x end-to-end suite (Engine.IO v3 / Socket.IO v4 protocol).

The same tests run once per venv (python-socketio 4.5.1 and 4.6.x, both on python-engineio 3.x);
see run.sh. Every wait has a timeout, so a broken server fails a test instead of hanging it.

python-socketio 4.x differs from 5.x in ways these fixtures care about:

* ``connect()`` returns as soon as the Engine.IO session is open; the Socket.IO CONNECT packet of
  ``/`` (or the ERROR packet of a refusal) arrives afterwards, so tests wait for ``welcome``.
* No ``auth`` (v4 clients cannot send one), no ``wait_timeout``, no ``get_sid(namespace)``: the
  client's ``sid`` is the Engine.IO session id, which Socket.IO v4 servers use as the id of the
  socket of ``/`` (``<nsp>#<sid>`` for other namespaces).
* python-engineio 3.x runs its read, write and ping loops in non-daemon threads that can outlive
  ``disconnect()`` (see ``close_client``); the clients made here use daemon threads, so a slow
  close can never hold up the end of the test run.
"""

import itertools
import os
import queue
import re
import subprocess
import threading
import time
import warnings
from pathlib import Path

import engineio
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
#: The transport in use once ``connect()`` returned (python-engineio 3.x upgrades inside it).
EXPECTED_TRANSPORT = {"polling": "polling", "websocket": "websocket", "default": "websocket"}


_ids = itertools.count(1)


def uniq(prefix):
    """A name no other test (or run) uses."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def call(client, event, data=None, namespace=None, timeout=WAIT_S):
    """``client.call`` with a timeout and a clear failure message."""
    try:
        return client.call(event, data, namespace=namespace, timeout=timeout)
    except socketio.exceptions.TimeoutError:
        raise AssertionError(f"no ack for {event!r} within {timeout} s") from None


def pytest_report_header(config):
    return (
        f"python-socketio {socketio.__version__}, python-engineio {engineio.__version__}, "
        f"server {SERVER_BIN}"
    )


class ServerProcess:
    """A running e2e server; ``stop()`` kills it."""

    _counter = 0

    def __init__(self, port=0, label="server", args=()):
        if not SERVER_BIN.exists():
            raise RuntimeError(
                f"e2e server binary not found at {SERVER_BIN}; build it with "
                "`cargo build -p socketlet --example e2e_server` or set SOCKETLET_E2E_SERVER"
            )
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        ServerProcess._counter += 1
        self.log_path = (
            ARTIFACTS_DIR
            / f"python4-{socketio.__version__}-{label}-{os.getpid()}-{ServerProcess._counter}.log"
        )
        env = {"RUST_LOG": "info,socketlet=debug,socketlet_engine=debug,e2e_server=debug"}
        env.update(os.environ)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(SERVER_BIN), "--port", str(port), *args],
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


@pytest.fixture(scope="module")
def fast_ping_server():
    """A server with a 400 ms ping interval and a 600 ms ping timeout."""
    srv = ServerProcess(label="fast-ping", args=("--ping-interval", "400", "--ping-timeout", "600"))
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

    def drain(self, settle=0.0):
        """Returns (and forgets) everything recorded so far, after ``settle`` seconds."""
        if settle:
            time.sleep(settle)
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out


class _DaemonThreadsEngineIOClient(engineio.Client):
    """python-engineio 3.x's client, with its background loops in daemon threads.

    Nothing else changes: the loops are the library's. (Its threads are non-daemon, and after a
    ``disconnect()`` the polling read loop can sit in a GET for up to pingInterval + 5 s and the
    ping loop in a sleep of pingInterval: 30 s and 25 s with the server defaults.)
    """

    def start_background_task(self, target, *args, **kwargs):
        th = threading.Thread(
            target=target,
            args=args,
            kwargs=kwargs,
            name=f"eio3-{getattr(target, '__name__', 'task')}",
            daemon=True,
        )
        th.start()
        return th


class Client(socketio.Client):
    """``socketio.Client`` of python-socketio 4.x on the daemon-thread Engine.IO client."""

    def _engineio_client_class(self):
        return _DaemonThreadsEngineIOClient


def run_bounded(fn, timeout, what):
    """Runs ``fn()`` in a daemon thread; returns its result or fails after ``timeout`` seconds.

    Used for calls of the client that have no timeout of their own (e.g. the WebSocket
    handshake in ``connect()``: websocket-client waits forever by default).
    """
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed over to the caller
            outcome["exc"] = exc

    thread = threading.Thread(target=run, name=f"e2e-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what} did not return within {timeout} s")
    if "exc" in outcome:
        raise outcome["exc"]
    return outcome.get("value")


@pytest.fixture
def make_client(server, transports):
    """Factory of clients: ``make_client(...)`` returns ``(client, events)``.

    ``events`` records the events named in ``record``, and ``welcome``, on every namespace in
    ``namespaces`` (``<nsp>:<event>`` for namespaces other than ``/``). With ``wait_welcome`` (the default) it
    returns once the server's ``welcome`` arrived on every namespace, i.e. once they are all
    connected; ``connect=False`` returns an unconnected client. ``srv`` is another server than
    the session's.
    """
    clients = []

    def make(
        query="",
        srv=None,
        namespaces=("/",),
        record=("welcome",),
        handlers=None,
        connect=True,
        wait_welcome=True,
    ):
        client = Client(
            reconnection=True,
            reconnection_delay=0.1,
            reconnection_delay_max=0.2,
            randomization_factor=0,
            request_timeout=WAIT_S,
        )
        clients.append(client)
        events = Events()
        record = tuple(record)
        if "welcome" not in record:
            record += ("welcome",)
        for nsp in namespaces:
            for name in record:
                key = name if nsp == "/" else f"{nsp}:{name}"
                client.on(name, events.handler(key), namespace=nsp)
        for (name, nsp), fn in (handlers or {}).items():
            client.on(name, fn, namespace=nsp)
        if connect:
            run_bounded(
                lambda: client.connect(
                    (srv or server).url + query,
                    transports=transports,
                    namespaces=list(namespaces),
                ),
                WAIT_S + 2,
                "connect()",
            )
            if wait_welcome:
                for nsp in namespaces:
                    events.get("welcome" if nsp == "/" else f"{nsp}:welcome")
        return client, events

    yield make
    for client in clients:
        close_client(client)


def close_client(client, timeout=3.0):
    """Disconnects ``client``; a slow close only shows up as a warning.

    python-socketio 4.x's ``disconnect()`` queues DISCONNECT then CLOSE and leaves the Engine.IO
    loops to finish on their own. When the write loop is still busy POSTing the DISCONNECT
    packet as the state changes, it exits without ever sending CLOSE, and the pending long-poll
    GET then lasts until the server ends the session. That is a client race, not what these tests
    check (test_client_close_ends_session checks the server's side of a close).
    """
    start = time.monotonic()
    try:
        run_bounded(client.disconnect, timeout, "disconnect()")
    except Exception as exc:  # noqa: BLE001 - best-effort cleanup
        warnings.warn(f"client.disconnect() failed: {exc}", stacklevel=2)
        return
    task = client.eio.read_loop_task
    if task is not None:
        task.join(max(timeout - (time.monotonic() - start), 0.01))
        if task.is_alive():
            warnings.warn(
                f"python-engineio's read loop ({client.transport()}) still running {timeout} s "
                "after disconnect(); left to finish in the background (daemon thread)",
                stacklevel=2,
            )
