"""Fixtures of the Python end-to-end suite: the e2e server process and python-socketio clients.

The server, the event recorder and the tests shared with the python-socketio 4.x suite are in
tests/e2e/pylib (put on ``sys.path`` here). Every wait has a timeout, so a broken server fails a
test instead of hanging it.
"""

import sys
import warnings
from pathlib import Path

import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))

from e2e import CLIENT_OPTS, WAIT_S, listen, run_bounded, start_e2e_server  # noqa: E402

# The fixtures setup_name and transports.
pytest_plugins = ("e2e_fixtures",)


@pytest.fixture(scope="session")
def server():
    srv = start_e2e_server("python", label="server")
    yield srv
    srv.stop()


@pytest.fixture
def make_client(server, transports):
    """Factory of connected clients; ``make_client(connect=False)`` returns an unconnected one.

    Returns ``(client, events)``; ``events`` records the events named in ``record``
    (by default ``welcome``) on the namespaces in ``namespaces``. ``handlers`` maps
    ``(event, namespace)`` to a handler registered before the connection.
    """
    yield from client_factory(server, transports)


def client_factory(server, transports, **options):
    """What a ``make_client`` fixture yields (see the suite's), its ``socketio.Client`` made with
    ``options`` too (e.g. ``serializer="msgpack"``); every client is disconnected once the
    generator resumes."""
    clients = []

    def make(
        auth=None,
        namespaces=None,
        record=("welcome",),
        handlers=None,
        connect=True,
        url=None,
    ):
        client = socketio.Client(**CLIENT_OPTS, **options, handle_sigint=False)
        clients.append(client)
        events = listen(client, namespaces or ["/"], record, handlers)
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
    try:
        run_bounded(client.disconnect, timeout, "disconnect()")
    except AssertionError:
        warnings.warn(
            f"client.disconnect() ({client.transport()}) did not finish within {timeout} s; "
            "left to finish in the background",
            stacklevel=2,
        )
    except Exception:  # noqa: BLE001 - best-effort cleanup
        pass
