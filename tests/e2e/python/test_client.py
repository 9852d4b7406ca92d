"""python-socketio (synchronous ``socketio.Client``) against the e2e server.

Every test runs once per transport setup: polling only, websocket only, and the default
(polling, then upgrade to WebSocket). See tests/e2e/CONTRACT.md for what the server does.
"""

import itertools
import os
import threading
import time

import socketio

from conftest import WAIT_S

_ids = itertools.count(1)


def uniq(prefix):
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def typed(value):
    """A type-strict view of a decoded payload (``True == 1`` and ``1 == 1.0`` in plain Python)."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [typed(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", {k: typed(v) for k, v in value.items()}]
    return [type(value).__name__, value]


def call(client, event, data=None, namespace=None, timeout=WAIT_S):
    """``client.call`` with a timeout and a clear failure message."""
    try:
        return client.call(event, data, namespace=namespace, timeout=timeout)
    except socketio.exceptions.TimeoutError:
        raise AssertionError(f"no ack for {event!r} within {timeout} s") from None


def failing_connect(client, timeout=10.0, **kwargs):
    """Runs ``client.connect(**kwargs)``, which must fail, and returns its exception.

    The call runs in a thread so that a server that never lets it return fails the test after
    ``timeout`` seconds. (After a refusal python-socketio disconnects the Engine.IO session and,
    over polling, waits for the pending long-poll GET to end: the server must answer it once it
    gets the CLOSE packet.)
    """
    outcome = {}

    def run():
        try:
            client.connect(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed over to the test
            outcome["exc"] = exc
        else:
            outcome["exc"] = None

    thread = threading.Thread(target=run, name="e2e-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    assert "exc" in outcome, (
        f"connect() did not return within {timeout} s after the refusal "
        "(over polling: the server did not end the pending GET after the client's CLOSE packet?)"
    )
    assert isinstance(outcome["exc"], socketio.exceptions.ConnectionError), outcome["exc"]
    return outcome["exc"]


def test_connect_with_auth(make_client, setup_name):
    auth = {"token": "let-me-in", "user": "zoë 🐍", "n": 1}
    client, events = make_client(auth=auth)
    (welcome,) = events.get("welcome")
    assert welcome == {"sid": client.get_sid("/"), "auth": auth, "protocol": 5}

    expected = {"polling": "polling", "websocket": "websocket", "default": "websocket"}[setup_name]
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


def test_echo_with_ack(make_client):
    client, _ = make_client()
    args = (
        "plain ascii",
        "héllo wörld — ünïcödé ✓",
        "日本語 / emoji 😀🎉👍🏽 / flag 🇫🇷",
        'control \x1e record separator, \n newline, "quotes", \\ backslash',
        0,
        -1,
        3.14159,
        2**53 - 1,
        True,
        None,
        [],
        {},
        {"nested": {"deeper": [1, "two", {"three": 3}, None]}, "ключ": "значение"},
    )
    assert typed(call(client, "echo", args)) == typed(args)
    # A single argument comes back as is (python-socketio unwraps one-element acks).
    assert call(client, "echo", {"only": "one"}) == {"only": "one"}


def test_echo_with_ack_binary(make_client):
    client, _ = make_client()
    big = bytes((i * 31) & 0xFF for i in range(50_000))
    args = (
        b"\x00\x01\xfe\xff",
        "between binaries",
        {"a": b"\x01\x02\x03", "nested": [{"deep": "héllo 😀".encode()}, 7, big]},
        [b"\xff"],
    )
    assert typed(call(client, "echo", args, timeout=10)) == typed(args)


def test_echo_without_ack(make_client):
    client, events = make_client(record=("welcome", "echo"))
    client.emit("echo", ("no ack 🚀", 7, {"deep": [None, b"\x01\x02"]}))
    assert events.get("echo") == ("no ack 🚀", 7, {"deep": [None, b"\x01\x02"]})


def test_binary_please(make_client):
    client, _ = make_client()
    assert call(client, "binary-please") == {"buf": b"\x01\x02\x03", "nested": [b"\xff"]}


def test_ask_client(make_client, server, transports):
    client, _ = make_client(connect=False)
    questions = []

    def on_question(question):
        questions.append(question)
        return f"answer to {question}"  # the return value is the ack

    client.on("question", on_question)
    client.connect(server.url, transports=transports, wait_timeout=WAIT_S)
    reply = call(client, "ask-client", "what is 6×7? 🤔")
    assert reply == {"answer": "answer to what is 6×7? 🤔"}
    assert questions == ["what is 6×7? 🤔"]


def test_rooms_and_to_room(make_client):
    a, events_a = make_client(record=("room-message",))
    b, events_b = make_client(record=("room-message",))
    sid_a, sid_b = a.get_sid("/"), b.get_sid("/")
    room = uniq("room")
    only_b = uniq("only-b")

    assert call(a, "join", room) == sorted([sid_a, room])
    assert call(b, "join", room) == sorted([sid_b, room])
    assert call(b, "join", only_b) == sorted([sid_b, room, only_b])

    assert call(a, "to-room", (room, "hello 1")) is True
    expected = {"room": room, "from": sid_a, "msg": "hello 1"}
    assert events_a.get("room-message") == (expected,)
    assert events_b.get("room-message") == (expected,)

    assert call(b, "leave", room) == sorted([sid_b, only_b])
    assert call(a, "to-room", (room, "hello 2")) is True
    assert events_a.get("room-message") == ({"room": room, "from": sid_a, "msg": "hello 2"},)
    # B left: the next thing it gets is a marker sent to a room it is still in.
    assert call(a, "to-room", (only_b, "marker")) is True
    assert events_b.get("room-message") == ({"room": only_b, "from": sid_a, "msg": "marker"},)


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
