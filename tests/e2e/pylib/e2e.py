"""What the Python end-to-end suites share: the servers they start, waits with timeouts, helpers.

tests/e2e/python (python-socketio 5.x) and tests/e2e/python4 (python-socketio 4.x) run in
different venvs with different python-socketio versions, so this module uses the standard library
only; their conftests put this directory on ``sys.path``. Next to it: client_tests.py (the tests
both client generations share) and e2e_fixtures.py (the fixtures both define alike). Every wait
has a timeout, so a broken server fails a test instead of hanging it.
"""

import itertools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_BIN = Path(
    os.environ.get("SOCKETLET_E2E_SERVER")
    or REPO_ROOT / "target" / "debug" / "examples" / "e2e_server"
)
SOCKETLET_BIN = Path(
    os.environ.get("SOCKETLET_BIN") or REPO_ROOT / "target" / "debug" / "socketlet"
)
ARTIFACTS_DIR = Path(
    os.environ.get("SOCKETLET_E2E_ARTIFACTS") or REPO_ROOT / "tests" / "e2e" / ".artifacts"
)

#: Default timeout (seconds) of a single wait: an ack, an event, a connection.
WAIT_S = 5.0
#: How long a server gets to say that it listens.
STARTUP_S = 10.0

#: The transport setups, as python-socketio's ``transports`` argument.
TRANSPORT_SETUPS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    # The client default: long-polling first, then the upgrade to WebSocket.
    "default": None,
}
#: The transport in use once ``connect()`` returned (python-engineio upgrades inside it).
EXPECTED_TRANSPORT = {"polling": "polling", "websocket": "websocket", "default": "websocket"}
#: ``socketio.Client`` options of every test client: fast reconnection, bounded requests.
CLIENT_OPTS = {
    "reconnection": True,
    "reconnection_delay": 0.1,
    "reconnection_delay_max": 0.2,
    "randomization_factor": 0,
    "request_timeout": WAIT_S,
}


class ServerProcess:
    """A server process started by a test, its stderr in ``tests/e2e/.artifacts/``.

    Starts ``argv`` and returns once a line of its stdout matches ``ready`` (a regexp matched from
    the line's start; its first group, if any, is the port it listens on: ``port`` and ``url``
    are set); fails with the tail of its log when it exits first or takes longer than
    ``STARTUP_S``. The log file is ``<log_prefix>-<label>-<pid>-<n>.log`` (its stdout goes there
    too with ``log_stdout``). ``stop()`` kills it; ``terminate()`` asks it to stop.
    """

    _counter = 0

    def __init__(
        self, argv, ready, *, label, log_prefix, env=None, what="server", log_stdout=False
    ):
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        ServerProcess._counter += 1
        self.log_path = (
            ARTIFACTS_DIR / f"{log_prefix}-{label}-{os.getpid()}-{ServerProcess._counter}.log"
        )
        full_env = dict(env or {})
        full_env.update(os.environ)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=full_env,
        )
        self._lines = queue.Queue()

        def pump():
            # Keeps draining stdout for the lifetime of the process (into the log too, with
            # ``log_stdout``: for programs that log to stdout, as redis-server does).
            for raw in self.proc.stdout:
                if log_stdout:
                    try:
                        self._log.write(raw)
                        self._log.flush()
                    except ValueError:  # the log is closed: the process was stopped
                        pass
                self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        m = self.wait_line(ready, STARTUP_S, what=f"{what} saying it listens", exc=RuntimeError)
        self.line = m.string
        # The first group of ``ready``, when it has one, is the port.
        self.port = int(m.group(1)) if m.re.groups else None
        self.url = f"http://127.0.0.1:{self.port}" if self.port is not None else None

    def wait_line(self, pattern, timeout=WAIT_S, *, what=None, exc=AssertionError):
        """Waits for a line of stdout that ``pattern`` matches from its start (lines before it
        are passed over); returns the match. Kills the process and fails, with the tail of its
        log, when it exits first or ``timeout`` s pass."""
        what = what or f"a line matching {pattern!r}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                failure = self._failure(f"no {what} within {timeout} s")
                self.stop()
                raise exc(failure) from None
            if line is None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # stdout closed, the process still runs
                    pass
                failure = self._failure(f"exited before {what} (code {self.proc.returncode})")
                self.stop()
                raise exc(failure)
            m = re.match(pattern, line)
            if m:
                return m

    def _failure(self, msg):
        self._log.flush()
        tail = self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        return f"{msg}\n--- stderr (tail, full log: {self.log_path}) ---\n{tail}"

    def stop(self):
        """Kills the process (if still running) and waits for it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        finally:
            self._log.close()

    def terminate(self, timeout=10.0):
        """Sends SIGTERM and returns the exit code; kills it and fails after ``timeout`` s."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the server did not exit within {timeout} s of SIGTERM") from None
        finally:
            self._log.close()


def start_e2e_server(log_prefix, label="server", args=(), port=0):
    """The e2e server (tests/e2e/CONTRACT.md) on ``port`` (0: a free one), once it printed
    ``LISTENING <port>``."""
    if not SERVER_BIN.exists():
        raise RuntimeError(
            f"e2e server binary not found at {SERVER_BIN}; build it with "
            "`cargo build -p socketlet --example e2e_server` or set SOCKETLET_E2E_SERVER"
        )
    return ServerProcess(
        [SERVER_BIN, "--port", str(port), *args],
        r"LISTENING (\d+)\s*$",
        label=label,
        log_prefix=log_prefix,
        env={"RUST_LOG": "info,socketlet=debug,socketlet_engine=debug,e2e_server=debug"},
        what="e2e server",
    )


def start_socketlet(log_prefix, label="binary", args=()):
    """The ``socketlet`` binary on a free port of 127.0.0.1, once it printed
    ``socketlet listening on http://127.0.0.1:<port> ...`` (``line``)."""
    if not SOCKETLET_BIN.exists():
        raise RuntimeError(
            f"socketlet binary not found at {SOCKETLET_BIN}; build it with "
            "`cargo build -p socketlet-cli` or set SOCKETLET_BIN"
        )
    return ServerProcess(
        [SOCKETLET_BIN, "--addr", "127.0.0.1:0", *args],
        r"socketlet listening on http://127\.0\.0\.1:(\d+)",
        label=label,
        log_prefix=log_prefix,
        env={"RUST_LOG": "info"},
        what="socketlet",
    )


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

    def none(self, name, settle=0.5):
        """Asserts that no ``name`` event comes within ``settle`` seconds (others are passed
        over)."""
        deadline = time.monotonic() + settle
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got, args = self._q.get(timeout=remaining)
            except queue.Empty:
                return
            assert got != name, f"unexpected {name!r} event: {args!r}"

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


def listen(client, namespaces, record, handlers=None):
    """Registers the handlers of a test client; returns its ``Events``.

    The ``Events`` records the events named in ``record`` on every namespace of ``namespaces``
    (as ``<event>`` on ``/``, ``<nsp>:<event>`` elsewhere); ``handlers`` maps
    ``(event, namespace)`` to a handler of the test's own.
    """
    events = Events()
    for nsp in namespaces:
        for name in record:
            key = name if nsp == "/" else f"{nsp}:{name}"
            client.on(name, events.handler(key), namespace=nsp)
    for (name, nsp), fn in (handlers or {}).items():
        client.on(name, fn, namespace=nsp)
    return events


def run_bounded(fn, timeout, what):
    """Runs ``fn()`` in a daemon thread; returns its result or fails after ``timeout`` seconds.

    For calls of the client that have no timeout of their own (e.g. the WebSocket handshake in
    python-socketio 4.x's ``connect()``: websocket-client waits forever by default), or whose
    slowness must not hold up the suite.
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


_ids = itertools.count(1)


def uniq(prefix):
    """A name no other test (or run) uses."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def typed(value):
    """A type-strict view of a decoded payload (``True == 1`` and ``1 == 1.0`` in plain Python)."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [typed(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", {k: typed(v) for k, v in value.items()}]
    return [type(value).__name__, value]
