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

import sys
import threading
import time
import warnings
from pathlib import Path

import engineio
import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))

from e2e import (  # noqa: E402
    CLIENT_OPTS,
    SERVER_BIN,
    WAIT_S,
    listen,
    run_bounded,
    start_e2e_server,
)

# The fixtures setup_name and transports.
pytest_plugins = ("e2e_fixtures",)

#: The server logs: tests/e2e/.artifacts/python4-<python-socketio version>-<label>-….log.
LOG_PREFIX = f"python4-{socketio.__version__}"


def pytest_report_header(config):
    return (
        f"python-socketio {socketio.__version__}, python-engineio {engineio.__version__}, "
        f"server {SERVER_BIN}"
    )


@pytest.fixture(scope="session")
def server():
    srv = start_e2e_server(LOG_PREFIX, label="server")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fast_ping_server():
    """A server with a 400 ms ping interval and a 600 ms ping timeout."""
    srv = start_e2e_server(
        LOG_PREFIX, label="fast-ping", args=("--ping-interval", "400", "--ping-timeout", "600")
    )
    yield srv
    srv.stop()


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
        client = Client(**CLIENT_OPTS)
        clients.append(client)
        # The welcome is always recorded (connecting means waiting for it).
        record = tuple(record)
        if "welcome" not in record:
            record += ("welcome",)
        events = listen(client, namespaces, record, handlers)
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
