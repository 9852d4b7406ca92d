"""Fixtures of the socketlet package's tests: the real ``socketlet`` binary, started per test
on a free port (its log in tests/e2e/.artifacts/), and python-socketio clients connected to it.

The binary is ``$SOCKETLET_BIN``, else ``<repo>/target/debug/socketlet`` (``cargo build -p
socketlet-cli``). Without it the tests that need it are skipped, unless ``SOCKETLET_BIN`` is set
(then a missing binary is a failure). Every wait has a timeout.
"""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The end-to-end suites' helpers (standard library only): server processes, event recorders.
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e" / "pylib"))

from e2e import SOCKETLET_BIN, WAIT_S, Events, start_socketlet as start_binary  # noqa: E402


@pytest.fixture
def start_socketlet(request):
    """Factory: ``start_socketlet(*flags)`` starts the binary on a free port of 127.0.0.1 (its
    log in tests/e2e/.artifacts/); all are stopped after the test. Skips the test when there is
    no binary and ``SOCKETLET_BIN`` is not set (set, a missing binary is a failure)."""
    if not (SOCKETLET_BIN.is_file() and os.access(SOCKETLET_BIN, os.X_OK)):
        if os.environ.get("SOCKETLET_BIN"):
            pytest.fail(f"SOCKETLET_BIN={SOCKETLET_BIN} is not an executable file")
        pytest.skip("no socketlet binary (cargo build -p socketlet-cli, or set SOCKETLET_BIN)")
    started = []

    def start(*args):
        server = start_binary("python-pkg", label=request.node.name, args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def connect():
    """Factory: ``connect(url, record=(...), handlers={...}, auth=None)`` returns a connected
    python-socketio client and the recorder of its events; all disconnect after the test."""
    socketio = pytest.importorskip("socketio")
    clients = []

    def make(url, record=(), handlers=None, auth=None, transports=("websocket",)):
        client = socketio.Client(reconnection=False, request_timeout=WAIT_S)
        recorder = Events()
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
