"""The client tests python-socketio 5.x (tests/e2e/python) and 4.x (tests/e2e/python4) share.

Each suite imports them into its own test module (``from client_tests import *``), where pytest
collects them and runs them with that suite's fixtures: ``make_client(record=..., handlers=...)`` returns ``(client, events)`` for
a client connected to ``/`` (once per transport setup). Unlike e2e.py, this module imports
python-socketio: whichever version the running venv has, through the API both generations have
(``Client.call``, ``socketio.exceptions.TimeoutError``). See tests/e2e/CONTRACT.md for what the
server does.
"""

import socketio

from e2e import WAIT_S, typed, uniq

# What ``from client_tests import *`` brings into a suite's test module: the shared tests.
__all__ = [
    "test_echo_with_ack",
    "test_echo_with_ack_binary",
    "test_echo_without_ack",
    "test_binary_please",
    "test_ask_client",
    "test_rooms_and_to_room",
]


def call(client, event, data=None, namespace=None, timeout=WAIT_S):
    """``client.call`` with a timeout and a clear failure message."""
    try:
        return client.call(event, data, namespace=namespace, timeout=timeout)
    except socketio.exceptions.TimeoutError:
        raise AssertionError(f"no ack for {event!r} within {timeout} s") from None


def sid(client):
    """The id of the client's socket of ``/``.

    python-socketio 5.x has it from the server (``get_sid``); 4.x only knows the Engine.IO session
    id, which Socket.IO v4 servers use as the id of the socket of ``/``.
    """
    return client.get_sid("/") if hasattr(client, "get_sid") else client.sid


ECHO_ARGS = (
    "plain ascii",
    "héllo wörld — ünïcödé ✓",
    "日本語 / emoji 😀🎉👍🏽 / flag 🇫🇷",
    'control \x1e record separator, \n newline, "quotes", \\ backslash, 12:34 colon',
    "",
    0,
    -1,
    3.14159,
    -2.5e-7,
    2**53 - 1,
    True,
    False,
    None,
    [],
    {},
    {"nested": {"deeper": [1, "two", {"three": 3}, None, [[[]]]]}, "ключ": "значение"},
)


def test_echo_with_ack(make_client):
    # Non-BMP text (emoji) is fine here over polling because each ack is alone in its payload;
    # see python4's test_polling_payload_lengths_count_utf16_units for python-engineio 3.x.
    client, _ = make_client()
    assert typed(call(client, "echo", ECHO_ARGS)) == typed(ECHO_ARGS)
    # A single argument comes back as is (python-socketio unwraps one-element acks).
    assert call(client, "echo", {"only": "one 😀"}) == {"only": "one 😀"}
    assert call(client, "echo", "😀" * 1000) == "😀" * 1000


def test_echo_with_ack_binary(make_client):
    client, _ = make_client()
    big = bytes((i * 31) & 0xFF for i in range(50_000))
    args = (
        b"\x00\x01\xfe\xff",
        "between binaries ✓",
        {"a": b"\x01\x02\x03", "nested": [{"deep": "héllo 😀".encode()}, 7, big]},
        [b"\xff"],
    )
    assert typed(call(client, "echo", args, timeout=10)) == typed(args)
    assert call(client, "echo", b"\x00" * 3) == b"\x00" * 3
    # No empty attachment (b""): the server sends it right (a binary message holding only the
    # Engine.IO type byte 0x04) but python-engineio 3.x decodes a packet of length 1 as data=None,
    # so the client hands back None in its place.


def test_echo_without_ack(make_client):
    client, events = make_client(record=("echo",))
    client.emit("echo", ("no ack 🚀", 7, {"deep": [None, b"\x01\x02"]}))
    assert events.get("echo") == ("no ack 🚀", 7, {"deep": [None, b"\x01\x02"]})


def test_binary_please(make_client):
    client, _ = make_client()
    assert call(client, "binary-please") == {"buf": b"\x01\x02\x03", "nested": [b"\xff"]}


def test_ask_client(make_client):
    questions = []

    def on_question(question):
        questions.append(question)
        return f"answer to {question}"  # the return value is the ack

    client, _ = make_client(handlers={("question", "/"): on_question})
    reply = call(client, "ask-client", "what is 6×7? 🤔")
    assert reply == {"answer": "answer to what is 6×7? 🤔"}
    assert questions == ["what is 6×7? 🤔"]


def test_rooms_and_to_room(make_client):
    a, events_a = make_client(record=("room-message",))
    b, events_b = make_client(record=("room-message",))
    sid_a, sid_b = sid(a), sid(b)
    room = uniq("room ✓")
    only_b = uniq("only-b")

    assert call(a, "join", room) == sorted([sid_a, room])
    assert call(b, "join", room) == sorted([sid_b, room])
    assert call(b, "join", only_b) == sorted([sid_b, room, only_b])

    assert call(a, "to-room", (room, "hello 1")) is True
    expected = {"room": room, "from": sid_a, "msg": "hello 1"}
    assert events_a.get("room-message") == (expected,)
    assert events_b.get("room-message") == (expected,)

    # Binary in a room broadcast.
    assert call(b, "to-room", (room, {"bin": b"\x00\xff", "n": 2})) is True
    expected = {"room": room, "from": sid_b, "msg": {"bin": b"\x00\xff", "n": 2}}
    assert events_a.get("room-message") == (expected,)
    assert events_b.get("room-message") == (expected,)

    assert call(b, "leave", room) == sorted([sid_b, only_b])
    assert call(a, "to-room", (room, "hello 2")) is True
    assert events_a.get("room-message") == ({"room": room, "from": sid_a, "msg": "hello 2"},)
    # B left: the next thing it gets is a marker sent to a room it is still in.
    assert call(a, "to-room", (only_b, "marker")) is True
    assert events_b.get("room-message") == ({"room": only_b, "from": sid_a, "msg": "marker"},)
    assert [e for e in events_a.drain(settle=0.2) if e[0] == "room-message"] == [], (
        "A is not in only-b"
    )
