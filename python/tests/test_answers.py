"""Binary attachments (socketlet.pack / unpack), the hooks' answers (accept, refuse, ack, emit)
and the API's command bodies (socketlet.commands): the JSON shapes socketlet takes
(crates/gateway/src/hooks.rs, crates/gateway/openapi.json)."""

import base64
import json

import pytest

import socketlet
from socketlet import commands


def test_bytes_anywhere_become_placeholders_in_order():
    args, binary = socketlet.pack(
        ["text", b"\x01\x02", {"file": bytearray(b"\xff"), "list": [memoryview(b"ab"), 3]}, (1, b"")]
    )
    assert args == [
        "text",
        {"_placeholder": True, "num": 0},
        {"file": {"_placeholder": True, "num": 1}, "list": [{"_placeholder": True, "num": 2}, 3]},
        [1, {"_placeholder": True, "num": 3}],
    ]
    assert [base64.b64decode(b) for b in binary] == [b"\x01\x02", b"\xff", b"ab", b""]
    assert socketlet.unpack(args, binary) == [
        "text",
        b"\x01\x02",
        {"file": b"\xff", "list": [b"ab", 3]},
        [1, b""],
    ]
    # No binary: nothing changes.
    assert socketlet.pack([{"a": [1, None, True]}]) == ([{"a": [1, None, True]}], [])


@pytest.mark.parametrize(
    "args, binary",
    [
        ([{"_placeholder": True, "num": 1}], ["AQID"]),
        ([{"_placeholder": True, "num": -1}], ["AQID"]),
        ([{"_placeholder": True, "num": "0"}], ["AQID"]),
        ([{"_placeholder": True, "num": True}], ["AQID"]),
        ([1], ["not base64!"]),
    ],
)
def test_unpack_refuses_bad_placeholders_and_attachments(args, binary):
    with pytest.raises(ValueError):
        socketlet.unpack(args, binary)


def test_unpack_leaves_objects_that_are_not_placeholders():
    args = [{"_placeholder": False, "num": 0}, {"_placeholder": 1, "num": 0}]
    assert socketlet.unpack(args, []) == args


def test_connect_answers():
    assert socketlet.accept(42, rooms=["user:42"], data={"plan": "pro"}) == {
        "result": {"user": 42, "rooms": ["user:42"], "data": {"plan": "pro"}}
    }
    assert socketlet.accept() == {"result": {"user": None, "rooms": [], "data": None}}
    assert socketlet.accept("u", rooms="one") == {"result": {"user": "u", "rooms": ["one"], "data": None}}
    assert socketlet.refuse("log in first") == {"error": {"message": "log in first"}}
    assert socketlet.refuse("banned", {"until": 3}) == {
        "error": {"message": "banned", "data": {"until": 3}}
    }
    with pytest.raises(TypeError):
        socketlet.accept(1, rooms=[1])
    with pytest.raises(TypeError):
        socketlet.refuse(None)


def test_event_answers():
    assert socketlet.ack() == {"result": {"ack": []}}
    assert socketlet.ack("ok", {"n": 1}) == {"result": {"ack": ["ok", {"n": 1}]}}
    answer = socketlet.ack(
        b"\x01",
        join="vip",
        leave=["lobby"],
        emit=[socketlet.emit("hello", "x", b"\x02", to="vip"), socketlet.emit("you")],
        disconnect=True,
    )
    assert answer == {
        "result": {
            "ack": [{"_placeholder": True, "num": 0}],
            "ack_binary": ["AQ=="],
            "join": ["vip"],
            "leave": ["lobby"],
            "emit": [
                {
                    "event": "hello",
                    "args": ["x", {"_placeholder": True, "num": 0}],
                    "binary": ["Ag=="],
                    "rooms": ["vip"],
                },
                {"event": "you", "args": [], "binary": [], "rooms": []},
            ],
            "disconnect": True,
        }
    }
    # What socketlet gets is JSON.
    json.dumps(answer)


def test_event_args_restores_attachments():
    payload = {
        "event": "upload",
        "args": ["name", {"_placeholder": True, "num": 0}],
        "binary": ["AQID"],
    }
    assert socketlet.event_args(payload) == ["name", b"\x01\x02\x03"]
    assert socketlet.event_args({"event": "x"}) == []


def test_command_bodies():
    c = commands.emit("news", {"t": 1}, b"\x00", to="room", sids=["s1"], except_="muted")
    assert c.method == "emit"
    assert c.body == {
        "nsp": "/",
        "rooms": ["room"],
        "except": ["muted"],
        "sids": ["s1"],
        "event": "news",
        "args": [{"t": 1}, {"_placeholder": True, "num": 0}],
        "binary": ["AA=="],
        "volatile": False,
    }
    assert commands.emit("x", nsp="/chat", volatile=True, ack_timeout_ms=0).body == {
        "nsp": "/chat",
        "rooms": [],
        "except": [],
        "sids": [],
        "event": "x",
        "args": [],
        "binary": [],
        "volatile": True,
        "ack_timeout_ms": 0,
    }
    assert commands.join(["a", "b"], sids="s").body["join"] == ["a", "b"]
    assert commands.join("a", to=("r1", "r2")).body["rooms"] == ["r1", "r2"]
    assert commands.leave("a").method == "sockets_leave"
    assert commands.disconnect(to="r", close=True).body == {
        "nsp": "/",
        "rooms": ["r"],
        "except": [],
        "sids": [],
        "close": True,
    }
    assert commands.fetch_sockets(nsp="/x").body == {"nsp": "/x", "rooms": [], "except": [], "sids": []}
    assert commands.rooms("/x") == commands.Command("rooms", {"nsp": "/x"})
    for bad in (
        lambda: commands.emit(1),
        lambda: commands.emit("x", to=[1]),
        lambda: commands.emit("x", to=b"room"),
        lambda: commands.emit("x", ack_timeout_ms=1.5),
        lambda: commands.join("a", nsp=None),
    ):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises(ValueError):
        commands.emit("x", ack_timeout_ms=-1)


def test_client_needs_a_key_and_finds_the_api_path():
    with pytest.raises(ValueError):
        socketlet.Client("http://127.0.0.1:3000", "")
    assert socketlet.Client("http://h:1", "k").api_url == "http://h:1/api"
    assert socketlet.Client("http://h:1/", "k").api_url == "http://h:1/api"
    assert socketlet.Client("http://h:1/api/", "k").api_url == "http://h:1/api"
    assert socketlet.Client("https://h/sl", "k").api_url == "https://h/sl/api"
