"""socketlet.Client against the real ``socketlet`` binary (``--api-key``), with python-socketio
5.x clients connected to it: every method, binary both ways, acks, errors."""

import socket
import threading
import time

import pytest

import socketlet

KEY = "test-key-1"


@pytest.fixture
def server(start_socketlet):
    # Two keys, as while rotating; the tests use the second.
    return start_socketlet("--api-key", f"old-key,{KEY}")


@pytest.fixture
def api(server):
    return socketlet.Client(server.url, KEY)


def until(predicate, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_emit_reaches_the_selected_sockets_with_binary(server, api, connect):
    a, ev_a = connect(server.url, record=["news"])
    b, ev_b = connect(server.url, record=["news"])

    assert api.emit("news", {"n": 1}, b"\x00\x01\xff", [b"nested"], sids=a.get_sid()) is None
    assert ev_a.get("news") == ({"n": 1}, b"\x00\x01\xff", [b"nested"])
    ev_b.none("news")

    # To everyone; then everyone except the sockets of a room (a socket's id is a room).
    api.emit("news", "all")
    assert ev_a.get("news") == ("all",)
    assert ev_b.get("news") == ("all",)
    api.emit("news", "not a", except_=a.get_sid())
    assert ev_b.get("news") == ("not a",)
    ev_a.none("news")


def test_join_leave_rooms_and_fetch_sockets(server, api, connect):
    a, ev_a = connect(server.url, record=["room-news"])
    b, ev_b = connect(server.url, record=["room-news"])

    api.join(["red", "blue"], sids=[a.get_sid()])
    api.join("blue", sids=b.get_sid())
    assert api.rooms() == {"red": 1, "blue": 2}

    api.emit("room-news", "to red", to="red")
    assert ev_a.get("room-news") == ("to red",)
    ev_b.none("room-news")
    api.emit("room-news", "to blue but red", to=["blue"], except_="red")
    assert ev_b.get("room-news") == ("to blue but red",)
    ev_a.none("room-news")

    listed = api.fetch_sockets()
    assert sorted(s["id"] for s in listed) == sorted([a.get_sid(), b.get_sid()])
    mine = next(s for s in listed if s["id"] == a.get_sid())
    assert sorted(mine["rooms"]) == sorted([a.get_sid(), "red", "blue"])
    assert mine["nsp"] == "/"
    assert mine["user"] is None and mine["data"] is None
    assert mine["handshake"]["address"] == "127.0.0.1"
    assert mine["handshake"]["query"]["EIO"] == "4"
    assert [s["id"] for s in api.fetch_sockets(to="red")] == [a.get_sid()]
    assert [s["id"] for s in api.fetch_sockets(to="blue", except_="red")] == [b.get_sid()]

    # Leaving everyone's blue: every socket of the namespace is selected.
    api.leave("blue")
    assert api.rooms() == {"red": 1}
    api.leave(["red"], to="red")
    assert api.rooms() == {}


def test_emit_with_acks(server, api, connect):
    a, _ = connect(server.url, handlers={"question": lambda *args: ["answer", *args]})
    b, _ = connect(server.url, handlers={"question": lambda *args: b"\x07\x08"})

    got = api.emit("question", 41, ack_timeout_ms=3000)
    assert got["missing"] == [] and got["missing_remote"] == 0 and got["cluster_error"] is None
    acks = {ack["id"]: ack["args"] for ack in got["acks"]}
    assert acks == {a.get_sid(): [["answer", 41]], b.get_sid(): [b"\x07\x08"]}

    # A socket that never answers is listed as missing once the timeout is over.
    silent = threading.Event()
    c, _ = connect(server.url, handlers={"slow": lambda: silent.wait(3) and None})
    started = time.monotonic()
    got = api.emit("slow", sids=c.get_sid(), ack_timeout_ms=300)
    assert time.monotonic() - started < 2.5
    silent.set()
    assert got["acks"] == [] and got["missing"] == [c.get_sid()]


def test_disconnect_and_close(server, api, connect):
    a, ev_a = connect(server.url)
    b, ev_b = connect(server.url)
    api.disconnect(sids=a.get_sid())
    ev_a.get("disconnect")
    until(lambda: not a.connected, "a to be disconnected")
    assert [s["id"] for s in api.fetch_sockets()] == [b.get_sid()]
    api.disconnect(to=b.get_sid(), close=True)
    ev_b.get("disconnect")
    until(lambda: api.fetch_sockets() == [], "no socket left")


def test_batch_runs_commands_in_order_and_reports_each(server, api, connect):
    a, ev_a = connect(server.url, record=["hello"])
    results = api.batch(
        [
            socketlet.commands.join("team", sids=a.get_sid()),
            socketlet.commands.emit("hello", "team", b"\x01", to="team"),
            socketlet.commands.rooms(),
            socketlet.commands.fetch_sockets(to="team"),
            socketlet.commands.emit("hello", nsp="/nowhere"),
            {"sockets_leave": {"leave": ["team"]}},  # the API's own shape works too
            socketlet.commands.rooms(),
        ]
    )
    assert results[0] is None
    assert results[1] is None
    assert ev_a.get("hello") == ("team", b"\x01")
    assert results[2] == {"team": 1}
    assert [s["id"] for s in results[3]] == [a.get_sid()]
    assert isinstance(results[4], socketlet.ApiError)
    assert results[4].code == "unknown_namespace"
    assert results[5] is None
    assert results[6] == {}


def test_errors_are_api_errors(server, api):
    with pytest.raises(socketlet.ApiError) as exc:
        socketlet.Client(server.url, "wrong").rooms()
    assert (exc.value.status, exc.value.code) == (401, "unauthorized")
    # The key that is being rotated out still works.
    assert socketlet.Client(server.url, "old-key").rooms() == {}

    with pytest.raises(socketlet.ApiError) as exc:
        api.fetch_sockets(nsp="/nowhere")
    assert (exc.value.status, exc.value.code) == (404, "unknown_namespace")
    assert "/nowhere" in exc.value.message

    with pytest.raises(socketlet.ApiError) as exc:
        api.call("emit", {"event": "x", "args": [{"_placeholder": True, "num": 0}]})
    assert (exc.value.status, exc.value.code) == (400, "bad_request")

    with pytest.raises(socketlet.ApiError) as exc:
        api.call("nope", {})
    assert (exc.value.status, exc.value.code) == (404, "not_found")


def test_unreachable_and_silent_servers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens there any more.
    with pytest.raises(socketlet.ApiError) as exc:
        socketlet.Client(f"http://127.0.0.1:{port}", KEY, timeout=2).rooms()
    assert (exc.value.status, exc.value.code) == (0, "unreachable")

    # A server that accepts and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(socketlet.ApiError) as exc:
            socketlet.Client(url, KEY, timeout=0.5).rooms()
        assert (exc.value.status, exc.value.code) == (0, "timeout")
        assert time.monotonic() - started < 3


def test_the_api_on_an_address_of_its_own(start_socketlet, connect):
    server = start_socketlet("--api-key", KEY, "--api-addr", "127.0.0.1:0")
    m = server.wait_line(r"socketlet API listening on http://127\.0\.0\.1:(\d+)")
    port = int(m.group(1))
    a, ev_a = connect(server.url, record=["private"])
    socketlet.Client(f"http://127.0.0.1:{port}", KEY).emit("private", 1)
    assert ev_a.get("private") == (1,)
    # The public listener no longer answers the API (its static files refuse the POST).
    with pytest.raises(socketlet.ApiError) as exc:
        socketlet.Client(server.url, KEY).rooms()
    assert exc.value.status in (404, 405) and exc.value.code == "http_error"
