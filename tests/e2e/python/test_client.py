"""python-socketio 5.x (synchronous ``socketio.Client``, Engine.IO v4) against the e2e server.

Once per transport setup (polling only, websocket only, the default: polling, then the upgrade),
the tests of tests/e2e/pylib/client_tests.py, shared with the python-socketio 4.x suite, and
those below, which use what only 5.x has (``auth``, ``get_sid``, CONNECT_ERROR data). See
tests/e2e/CONTRACT.md for what the server does.
"""

import time

import socketio
from client_tests import *  # noqa: F403 - the tests both python-socketio generations share
from client_tests import call
from e2e import EXPECTED_TRANSPORT, WAIT_S, run_bounded


def failing_connect(client, timeout=10.0, **kwargs):
    """Runs ``client.connect(**kwargs)``, which must fail, and returns its exception.

    The call runs in a thread so that a server that never lets it return fails the test after
    ``timeout`` seconds. (After a refusal python-socketio disconnects the Engine.IO session and,
    over polling, waits for the pending long-poll GET to end: the server must answer it once it
    gets the CLOSE packet.)
    """
    try:
        run_bounded(
            lambda: client.connect(**kwargs),
            timeout,
            "connect() after the refusal (over polling: the server did not end the pending GET "
            "after the client's CLOSE packet?)",
        )
    except socketio.exceptions.ConnectionError as exc:
        return exc
    raise AssertionError("connect() succeeded; it must fail")


def test_connect_with_auth(make_client, setup_name):
    auth = {"token": "let-me-in", "user": "zoë 🐍", "n": 1}
    client, events = make_client(auth=auth)
    (welcome,) = events.get("welcome")
    assert welcome == {"sid": client.get_sid("/"), "auth": auth, "protocol": 5}

    expected = EXPECTED_TRANSPORT[setup_name]
    # python-engineio finishes the upgrade (if any) before connect() returns.
    assert client.transport() == expected
    for i in range(3):
        assert call(client, "echo", i) == i
        time.sleep(0.05)
    assert client.transport() == expected


def test_connect_without_auth(make_client):
    client, events = make_client()
    (welcome,) = events.get("welcome")
    # python-socketio always sends an auth object: `{}` when none is given (so no null here).
    assert welcome == {"sid": client.get_sid("/"), "auth": {}, "protocol": 5}


def test_rejected_connect(make_client, server, transports):
    client, events = make_client(connect=False, record=("connect_error", "connect"))
    failing_connect(
        client,
        url=server.url,
        auth={"token": "reject"},
        transports=transports,
        wait_timeout=WAIT_S,
    )
    (error,) = events.get("connect_error")
    assert error == {"message": "unauthorized", "data": {"code": "E_TOKEN"}}
    assert not client.connected
    assert ("connect", ()) not in events.drain()


def test_unknown_namespace_is_refused(make_client, server, transports):
    client, events = make_client(
        connect=False, namespaces=["/no-such-namespace"], record=("connect_error",)
    )
    failing_connect(
        client,
        url=server.url,
        transports=transports,
        namespaces=["/no-such-namespace"],
        wait_timeout=WAIT_S,
    )
    (error,) = events.get("/no-such-namespace:connect_error")
    # python-socketio passes the CONNECT_ERROR payload through as is.
    assert isinstance(error, dict) and error.get("message") == "Invalid namespace", error


def test_two_namespaces_one_client(make_client):
    auth = {"token": "two-namespaces"}
    client, events = make_client(auth=auth, namespaces=["/", "/admin"])
    (root_welcome,) = events.get("welcome")
    (admin_welcome,) = events.get("/admin:welcome")
    assert root_welcome == {"sid": client.get_sid("/"), "auth": auth, "protocol": 5}
    assert admin_welcome == {"nsp": "/admin", "sid": client.get_sid("/admin")}
    assert client.get_sid("/") != client.get_sid("/admin")
    assert call(client, "echo", ("to admin", 1), namespace="/admin") == ("to admin", 1)
    assert call(client, "echo", "to root") == "to root"


def test_disconnect_me(make_client):
    client, events = make_client(record=("welcome", "connect", "disconnect"))
    client.emit("disconnect-me")
    (reason,) = events.get("disconnect")
    # python-socketio names the "io server disconnect" reason "server disconnect".
    assert reason == client.reason.SERVER_DISCONNECT
    time.sleep(1.0)
    assert not client.connected
    assert [e for e in events.drain() if e[0] in ("connect", "welcome")] == [], (
        "must not reconnect after a server-initiated disconnect"
    )
