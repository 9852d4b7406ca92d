"""python-socketio 4.x (synchronous ``socketio.Client``, Engine.IO v3) against the e2e server.

Once per transport setup (polling only, websocket only, the default: polling, then the upgrade),
the tests of tests/e2e/pylib/client_tests.py, shared with the python-socketio 5.x suite, and
those below, for what differs in 4.x or in Engine.IO v3 (the query instead of ``auth``, ERROR
packets, the client's heartbeat, text payload framing). See tests/e2e/CONTRACT.md for what the
server does.
"""

import time

import requests
from client_tests import *  # noqa: F403 - the tests both python-socketio generations share
from client_tests import call
from e2e import EXPECTED_TRANSPORT, WAIT_S, run_bounded


def test_connect(make_client, setup_name):
    # A query string of the connection URL reaches the server untouched (and is no token here).
    client, events = make_client(query="?user=zo%C3%AB&token=let-me-in", wait_welcome=False)
    (welcome,) = events.get("welcome")
    # A v4 client has no auth payload: the server reports {} (as Node does), and protocol 4. The id of the
    # socket of "/" is the Engine.IO session id.
    assert welcome == {"sid": client.sid, "auth": {}, "protocol": 4}
    assert isinstance(client.sid, str) and client.sid
    assert client.connected

    # python-engineio 3.x finishes the upgrade (if any) inside connect().
    assert client.transport() == EXPECTED_TRANSPORT[setup_name]
    for i in range(3):
        assert call(client, "echo", i) == i
        time.sleep(0.05)
    assert client.transport() == EXPECTED_TRANSPORT[setup_name]
    assert [e for e in events.drain() if e[0] == "welcome"] == [], "one welcome only"


def test_refused_connect(make_client):
    """``token=reject`` in the URL query: the server answers the CONNECT of ``/`` with ERROR.

    python-socketio 4.x surfaces the ERROR packet (``4"unauthorized"``) as a ``connect_error``
    event on ``/`` whose only argument is the packet's data, the string ``"unauthorized"``.
    ``connect()`` itself returns normally: it only waits for the Engine.IO handshake, which
    succeeds. (``client.connected`` is not checked: 4.x sets it to True at the end of
    ``connect()``, after its message thread may already have handled the ERROR packet and set it
    to False; the refusal is seen through the event only.)
    """
    client, events = make_client(
        query="?token=reject", record=("connect_error", "connect"), wait_welcome=False
    )
    assert events.get("connect_error") == ("unauthorized",)
    seen = [e[0] for e in events.drain(settle=0.5)]
    assert "connect" not in seen and "welcome" not in seen, seen
    # Events of a refused namespace get nowhere: no ack.
    client.emit("echo", "after refusal", callback=events.handler("ack"))
    assert [e for e in events.drain(settle=0.5) if e[0] == "ack"] == []

    # The refusal is per connection: the next client gets in.
    ok, _ = make_client()
    assert call(ok, "echo", "fine") == "fine"


def test_admin_namespace_same_connection(make_client):
    client, events = make_client(
        namespaces=("/", "/admin"), record=("welcome", "echo"), wait_welcome=False
    )
    (root_welcome,) = events.get("welcome")
    (admin_welcome,) = events.get("/admin:welcome")
    assert root_welcome == {"sid": client.sid, "auth": {}, "protocol": 4}
    # Socket.IO v4 servers name the socket of another namespace "<nsp>#<engine id>" (2.x clients
    # compute the same id on their side).
    assert admin_welcome == {"nsp": "/admin", "sid": f"/admin#{client.sid}"}

    assert call(client, "echo", ("to admin ✓", 1, b"\x07"), namespace="/admin") == (
        "to admin ✓",
        1,
        b"\x07",
    )
    assert call(client, "echo", "to root") == "to root"
    client.emit("echo", "no ack, admin", namespace="/admin")
    assert events.get("/admin:echo") == ("no ack, admin",)
    client.emit("echo", "no ack, root")
    assert events.get("echo") == ("no ack, root",)
    # /admin has no join handler: the event is ignored (no ack), the connection lives on.
    client.emit("join", "x", namespace="/admin", callback=events.handler("admin-join-ack"))
    assert call(client, "echo", "still there", namespace="/admin") == "still there"
    assert [e for e in events.drain(settle=0.3) if e[0] == "admin-join-ack"] == []


def test_unknown_namespace_is_refused(make_client):
    client, events = make_client(
        namespaces=("/", "/no-such-namespace"),
        record=("connect_error",),
        wait_welcome=False,
    )
    events.get("welcome")
    # The ERROR packet of the namespace, as python-socketio 4.x passes it on.
    assert events.get("/no-such-namespace:connect_error") == ("Invalid namespace",)
    assert call(client, "echo", "root still fine") == "root still fine"


def test_disconnect_me(make_client):
    client, events = make_client(record=("welcome", "connect", "disconnect"))
    events.drain()
    client.emit("disconnect-me")
    # python-socketio 4.x's disconnect handler gets no argument.
    assert events.get("disconnect") == ()
    seen = events.drain(settle=1.0)
    assert not client.connected
    assert [e for e in seen if e[0] in ("connect", "welcome")] == [], (
        "must not reconnect after a server-initiated disconnect"
    )


def test_client_close_ends_session(make_client, setup_name):
    """An Engine.IO CLOSE from the client ends the session at once.

    Over polling, python-engineio 3.x then waits for its pending long-poll GET: the server must
    end it (the spec has it answered with a CLOSE or NOOP packet) instead of holding it.
    """
    client, events = make_client(record=("disconnect",))
    time.sleep(0.3)  # the write loop is idle: the CLOSE packet is sent on its own
    start = time.monotonic()
    run_bounded(lambda: client.eio.disconnect(abort=False), 5.0, "eio.disconnect()")
    assert time.monotonic() - start < 3.0
    assert client.eio.state == "disconnected"
    assert events.get("disconnect") == ()
    for task in (client.eio.read_loop_task, client.eio.write_loop_task):
        task.join(2.0)
        assert not task.is_alive()


def test_heartbeat(make_client, fast_ping_server, setup_name):
    """Engine.IO v3 heartbeat: the client PINGs every pingInterval and the server PONGs.

    python-engineio 3.x drops the connection when a PONG has not come back by its next PING, and
    the server drops a session that sends no PING for pingInterval + pingTimeout: with 400/600 ms,
    3 s of idling covers several rounds on both sides.
    """
    client, events = make_client(srv=fast_ping_server, record=("disconnect", "connect"))
    assert client.eio.ping_interval == 0.4 and client.eio.ping_timeout == 0.6
    sid = client.sid
    seen = events.drain(settle=3.0)
    assert [e for e in seen if e[0] in ("disconnect", "connect", "welcome")] == [], seen
    assert client.connected and client.sid == sid
    assert client.transport() == EXPECTED_TRANSPORT[setup_name]
    assert call(client, "echo", "still alive ✓") == "still alive ✓"


def test_polling_payload_lengths_count_utf16_units(server):
    """Engine.IO v3 text payloads (``<length>:<packet>``) count JS characters: UTF-16 units.

    Raw HTTP, no python-socketio: the server frames as the JS reference (engine.io-parser 2.x)
    does. python-engineio 3.x's client decodes those lengths as code points, which only differs
    for characters outside the BMP: it then mis-splits a payload in which such a character is
    followed by another packet ("Unexpected packet from server, aborting" and a reconnection).
    The client tests above keep non-BMP text out of multi-packet polling payloads for that.
    """
    base = f"{server.url}/socket.io/?EIO=3&transport=polling"
    r = requests.get(base, timeout=WAIT_S)
    assert r.status_code == 200
    sid = r.text.split('"sid":"', 1)[1].split('"', 1)[0]
    url = f"{base}&sid={sid}"
    packet = '42["echo","😀é"]'  # 15 code points, 16 UTF-16 units, 19 UTF-8 bytes
    units = len(packet.encode("utf-16-le")) // 2
    assert units == 16
    # Two packets in one POST, framed with UTF-16 lengths: the server splits them right...
    body = f"{units}:{packet}{units}:{packet}".encode()
    r = requests.post(
        url, data=body, headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=WAIT_S
    )
    assert (r.status_code, r.text) == (200, "ok")
    # ...and its echoes come back framed the same way (both in one payload, or one per GET).
    got = ""
    deadline = time.monotonic() + WAIT_S
    want = f"{units}:{packet}" * 2
    while len(got) < len(want) and time.monotonic() < deadline:
        r = requests.get(url, timeout=WAIT_S)
        assert r.status_code == 200
        if r.text not in ("1:3", "1:6"):  # skip PONG / NOOP payloads
            got += r.text
    # The session's welcome (and the "40" before it) may come first.
    assert got.endswith(want), got
    requests.post(url, data=b"1:1", timeout=WAIT_S)
