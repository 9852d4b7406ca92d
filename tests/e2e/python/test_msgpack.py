"""python-socketio 5.x with ``serializer='msgpack'`` against the e2e server with ``--msgpack``.

Each packet is one msgpack map in a binary message (binary data inline), on both sides; nothing
is negotiated. Once per transport setup: the tests both python-socketio generations share
(tests/e2e/pylib/client_tests.py: events, acks both ways, binary, rooms), run here with this
module's own ``server`` and ``make_client`` fixtures (they override the suite's), and those below.

python-socketio writes ``data: nil`` in packets that have none (a DISCONNECT, a CONNECT without
auth), where socket.io-msgpack-parser leaves the key out; the server takes both.
"""

import time

import pytest
from socketio import packet
from client_tests import *  # noqa: F403 - the shared tests, with this module's fixtures
from client_tests import call, sid
from conftest import client_factory
from e2e import EXPECTED_TRANSPORT, WAIT_S, start_e2e_server


@pytest.fixture(scope="module")
def server():
    srv = start_e2e_server("python", label="server-msgpack", args=["--msgpack"])
    yield srv
    srv.stop()


@pytest.fixture
def make_client(server, transports):
    """As the suite's ``make_client``, with ``serializer='msgpack'`` clients."""
    yield from client_factory(server, transports, serializer="msgpack")


def test_msgpack_connect_with_auth_and_transport(make_client, setup_name):
    auth = {"token": "let-me-in", "user": "zoë 🐍", "n": 1}
    client, events = make_client(auth=auth)
    (welcome,) = events.get("welcome")
    assert welcome == {"sid": client.get_sid("/"), "auth": auth, "protocol": 5}
    assert client.transport() == EXPECTED_TRANSPORT[setup_name]


def test_msgpack_connect_without_auth_data_nil(make_client):
    # python-socketio sends `{}` as auth; an explicit None would be `data: nil`.
    client, events = make_client()
    (welcome,) = events.get("welcome")
    assert welcome == {"sid": sid(client), "auth": {}, "protocol": 5}


def test_msgpack_disconnect_with_data_nil_leaves_the_namespace(make_client):
    watcher, _ = make_client()
    leaver, _ = make_client(namespaces=["/", "/admin"])
    gone = leaver.get_sid("/")

    def ids():
        return [s["id"] for s in call(watcher, "fetch-sockets")]

    assert gone in ids()
    # python-socketio's DISCONNECT, `{type: 1, data: nil, nsp: "/"}`, for `/` only (what
    # `disconnect()` sends for each namespace before it closes the connection).
    leaver._send_packet(leaver.packet_class(packet.DISCONNECT, namespace="/"))
    deadline = time.monotonic() + WAIT_S
    while gone in ids():
        assert time.monotonic() < deadline, "the server still has the socket that left"
        time.sleep(0.05)
    # Taken as leaving `/`, not as a packet it could not read (which ends the connection).
    assert call(leaver, "echo", "still here", namespace="/admin") == "still here"
