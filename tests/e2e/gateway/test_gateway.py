"""The gateway with python-socketio 5.x clients: one socketlet node whose hooks call the example
backend (backend.py: Starlette on uvicorn with the socketlet package), which calls back through
the server API."""

import json
import time
import urllib.error
import urllib.request

import pytest
import socketio
from conftest import HOOK_SECRET, WAIT_S, until

import socketlet


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_the_backend_accepts_a_valid_token(single, uid, transport):
    user = uid("alice")
    client, _ = single.connect(token=f"token-{user}", transports=[transport])
    sid = client.get_sid()
    assert client.call("whoami", timeout=WAIT_S) == {
        "user": user,
        "sid": sid,
        "nsp": "/",
        "data": {"transport": transport, "protocol": 5},
    }
    # What the connect hook got: the auth payload, the handshake, the visible headers only.
    got = next(c for c in single.recorded("connects") if c["sid"] == sid)
    assert got["auth"] == {"token": f"token-{user}"}
    assert got["nsp"] == "/" and got["protocol"] == 5 and got["transport"] == transport
    assert got["address"] == "127.0.0.1"
    assert got["query"]["EIO"] == "4"
    # socketlet's default list (no cookie without --hook-forward-cookie); python-socketio's
    # WebSocket sends an Origin, its polling a User-Agent.
    assert got["headers"] and set(got["headers"]) <= {"user-agent", "accept-language", "origin", "referer"}
    # The socket is the user's, in room user:<id>, as the API sees it.
    [listed] = single.api().fetch_sockets(to=f"user:{user}")
    assert listed["id"] == sid and listed["user"] == user
    assert sorted(listed["rooms"]) == sorted([sid, f"user:{user}"])
    assert listed["data"] == {"transport": transport, "protocol": 5}


@pytest.mark.parametrize("auth", [{"token": "wrong"}, {"token": "token-UPPER"}, {}, None, {"token": 7}])
def test_the_backend_refuses_other_tokens(single, auth):
    client, events = single.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(single.nodes[0].url, auth=auth, transports=["websocket"], wait_timeout=WAIT_S)
    (error,) = events.get("connect_error")
    assert error == {"message": "invalid token", "data": {"code": "E_TOKEN"}}
    assert not client.connected


def test_events_are_answered_by_the_backend_ack(single, uid):
    client, _ = single.connect(token=f"token-{uid('bob')}")
    assert client.call("echo", ("text", {"n": 1}, b"\x00\xffbinary"), timeout=WAIT_S) == (
        "text",
        {"n": 1},
        b"\x00\xffbinary",
    )
    nested = [[b"\x01", {"deep": b"\x02"}], [], {"x": [b""]}]
    assert client.call("echo", nested, timeout=WAIT_S) == nested
    # An event the backend does not know: its refusal is the ack.
    assert client.call("nope", 1, timeout=WAIT_S) == {"error": {"message": "unknown event: nope"}}


def test_the_backend_emits_through_the_api_to_a_user_room(single, uid):
    sender, target, other = uid("carol"), uid("dan"), uid("erin")
    s, s_events = single.connect(token=f"token-{sender}", record=["notification"])
    # The target user has two sockets (two tabs), over both transports.
    t1, t1_events = single.connect(token=f"token-{target}", record=["notification"])
    t2, t2_events = single.connect(
        token=f"token-{target}", record=["notification"], transports=["polling"]
    )
    o, o_events = single.connect(token=f"token-{other}", record=["notification"])

    answer = s.call("notify", {"to": target, "text": "hello"}, timeout=WAIT_S)
    assert answer == {"sockets": 2}
    for events in (t1_events, t2_events):
        assert events.get("notification") == ({"from": sender, "text": "hello"},)
    s_events.none("notification", settle=0.3)
    o_events.none("notification", settle=0.3)

    # The test itself, as another backend process would, with the same package.
    single.api().emit("notification", {"from": "ops", "text": b"\x01bin"}, to=f"user:{other}")
    assert o_events.get("notification") == ({"from": "ops", "text": b"\x01bin"},)


def test_commands_of_the_event_answer(single, uid):
    room = uid("room")
    a, a_events = single.connect(token=f"token-{uid('fay')}", record=["said"])
    b, b_events = single.connect(token=f"token-{uid('gus')}", record=["said"])
    c, c_events = single.connect(token=f"token-{uid('hal')}", record=["said"])
    assert a.call("join", room, timeout=WAIT_S) is True
    assert b.call("join", room, timeout=WAIT_S) is True
    assert single.api().rooms()[room] == 2
    assert c.call("say", (room, "hi room"), timeout=WAIT_S) is True
    speaker = single.api().fetch_sockets(sids=c.get_sid())[0]["user"]
    for events in (a_events, b_events):
        assert events.get("said") == ({"from": speaker, "text": "hi room"},)
    c_events.none("said", settle=0.3)


def test_the_disconnect_hook_is_called_once_per_socket(single, uid):
    user = uid("ivy")
    a, _ = single.connect(token=f"token-{user}")
    b, b_events = single.connect(token=f"token-{user}")
    c, c_events = single.connect(token=f"token-{user}")
    sids = {"a": a.get_sid(), "b": b.get_sid(), "c": c.get_sid()}

    a.disconnect()  # the client leaves
    assert b.call("bye", timeout=WAIT_S) == "bye"  # the backend's answer disconnects it
    b_events.get("disconnect")
    single.api().disconnect(sids=sids["c"])  # through the API
    c_events.get("disconnect")

    def mine():
        return {d["sid"]: d for d in single.recorded("disconnects") if d["user"] == user}

    got = until(lambda: len(mine()) == 3 and mine(), "three disconnect hooks")
    # python-socketio's disconnect() sends DISCONNECT and closes its connection at once: the
    # server may see either first.
    assert got[sids["a"]]["reason"] in ("client namespace disconnect", "transport close")
    assert got[sids["a"]] == {"sid": sids["a"], "nsp": "/", "user": user, "reason": got[sids["a"]]["reason"]}
    assert got[sids["b"]]["reason"] == "server namespace disconnect"
    assert got[sids["c"]]["reason"] == "server namespace disconnect"
    time.sleep(0.3)
    assert len(mine()) == 3  # once each
    assert single.api().fetch_sockets(to=f"user:{user}") == []


def test_the_backend_refuses_unsigned_and_forged_hook_calls(single):
    before = single.recorded("stats")["bad_signatures"]
    body = json.dumps({"sid": "x", "nsp": "/", "auth": {"token": "token-mallory"}}).encode()
    ts = int(time.time())
    for headers in (
        {},
        {"X-Socketlet-Timestamp": str(ts), "X-Socketlet-Signature": socketlet.sign("guess", ts, body)},
        {
            "X-Socketlet-Timestamp": str(ts - 3600),
            "X-Socketlet-Signature": socketlet.sign(HOOK_SECRET, ts - 3600, body),
        },
    ):
        request = urllib.request.Request(
            f"{single.backend_url}/socketlet/connect",
            data=body,
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=WAIT_S)
        assert exc.value.code == 401
    # Correctly signed (as socketlet signs), it goes through.
    request = urllib.request.Request(
        f"{single.backend_url}/socketlet/connect",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Socketlet-Timestamp": str(ts),
            "X-Socketlet-Signature": socketlet.sign(HOOK_SECRET, ts, body),
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as res:
        assert json.loads(res.read())["result"]["user"] == "mallory"
    # socketlet's own requests never failed the check.
    assert single.recorded("stats")["bad_signatures"] == before + 3
