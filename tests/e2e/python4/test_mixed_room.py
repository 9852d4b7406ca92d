"""One room, three client generations: socket.io-client 2.x (Engine.IO v3), socket.io-client 4.x
(Engine.IO v4) and python-socketio 4.x (Engine.IO v3), all on one server.

The Node clients run as subprocesses (node_clients/room_client.mjs, with the packages of
tests/e2e/node/node_modules) that print what they receive as JSON lines. A ``to-room`` broadcast
(unicode and binary in it) must reach all three, each in its own protocol's encoding.
"""

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from client_tests import call
from e2e import WAIT_S, uniq

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = HERE / "node_clients" / "room_client.mjs"
NODE_MODULES = HERE.parent / "node" / "node_modules"


def to_wire(value):
    """Python value -> the JSON the Node script takes (bytes as ``{"$bytes": hex}``)."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value):
    """The JSON the Node script prints -> Python value (``{"$bytes": hex}`` as bytes)."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


class NodeClient:
    """A room_client.mjs subprocess: commands on its stdin, JSON lines from its stdout."""

    def __init__(self, generation, url, setup):
        self.generation = generation
        self.proc = subprocess.Popen(
            ["node", str(NODE_SCRIPT), generation, url, setup],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines = queue.Queue()
        self.seen = []  # everything received, for failure messages
        self.backlog = []  # received, not taken by a wait yet
        self.stderr = []
        self._seq = 0
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def _pump_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def next(self, pred, what, timeout=WAIT_S):
        """The first message not taken yet that matches ``pred`` (earlier ones stay available)."""
        for i, msg in enumerate(self.backlog):
            if pred(msg):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"{self.generation}: no {what} within {timeout} s; got {self.seen}; "
                    f"stderr: {self.stderr[-20:]}"
                ) from None
            if msg is None:
                self.lines.put(None)  # stays at the end for the next wait
                raise AssertionError(
                    f"{self.generation}: exited (code {self.proc.poll()}) before {what}; got "
                    f"{self.seen}; stderr: {self.stderr[-20:]}"
                )
            self.seen.append(msg)
            if msg.get("type") == "error":
                raise AssertionError(f"{self.generation}: {msg}")
            if pred(msg):
                return msg
            self.backlog.append(msg)

    def event(self, name, timeout=WAIT_S):
        msg = self.next(
            lambda m: m["type"] == "event" and m["name"] == name, f"event {name!r}", timeout
        )
        return tuple(from_wire(msg["args"]))

    def call(self, event, *args, timeout=WAIT_S):
        self._seq += 1
        seq = self._seq
        self.proc.stdin.write(json.dumps({"seq": seq, "emit": event, "args": to_wire(args)}) + "\n")
        self.proc.stdin.flush()
        msg = self.next(
            lambda m: m["type"] == "ack" and m["seq"] == seq, f"ack of {event!r}", timeout
        )
        return tuple(from_wire(msg["args"]))

    def pending_events(self, name, settle=0.5):
        """The ``name`` events not taken yet, after ``settle`` more seconds."""
        time.sleep(settle)
        while True:
            try:
                msg = self.lines.get_nowait()
            except queue.Empty:
                break
            if msg is None:
                self.lines.put(None)
                break
            self.seen.append(msg)
            self.backlog.append(msg)
        return [
            tuple(from_wire(m["args"]))
            for m in self.backlog
            if m.get("type") == "event" and m["name"] == name
        ]

    def close(self, timeout=3.0):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"exit": True}) + "\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def node_client(server, setup_name):
    if shutil.which("node") is None:
        pytest.fail("node is not installed (needed for the mixed-room test)")
    for pkg in ("socket.io-client", "socket.io-client-v2"):
        if not (NODE_MODULES / pkg / "package.json").is_file():
            pytest.fail(f"{NODE_MODULES / pkg} is missing: run `npm ci` in tests/e2e/node first")
    started = []

    def start(generation):
        client = NodeClient(generation, server.url, setup_name)
        started.append(client)
        opened = client.next(lambda m: m["type"] == "open", "Engine.IO open")
        connected = client.next(lambda m: m["type"] == "connect", "connect")
        if setup_name == "default":
            assert opened["transport"] == "polling"
            client.next(lambda m: m["type"] == "upgrade", "upgrade to websocket")
        else:
            assert opened["transport"] == connected["transport"] == setup_name
        return client, connected["id"]

    yield start
    for client in started:
        client.close()


def test_to_room_reaches_all_generations(make_client, node_client, setup_name):
    py, py_events = make_client(record=("room-message",), wait_welcome=False)
    (py_welcome,) = py_events.get("welcome")
    assert py_welcome["protocol"] == 4
    v2, v2_id = node_client("v2")
    v4, v4_id = node_client("v4")
    assert v2.event("welcome")[0]["protocol"] == 4
    assert v4.event("welcome")[0]["protocol"] == 5
    py_id = py.sid
    assert len({py_id, v2_id, v4_id}) == 3

    room = uniq("mixed room ✓")
    assert call(py, "join", room) == sorted([py_id, room])
    assert v2.call("join", room) == (sorted([v2_id, room]),)
    assert v4.call("join", room) == (sorted([v4_id, room]),)

    senders = {
        "python-socketio 4.x": (lambda msg: call(py, "to-room", (room, msg)), py_id),
        "socket.io-client 2.x": (lambda msg: v2.call("to-room", room, msg)[0], v2_id),
        "socket.io-client 4.x": (lambda msg: v4.call("to-room", room, msg)[0], v4_id),
    }
    for i, (who, (send, sender_id)) in enumerate(senders.items()):
        # Text within the BMP only: python-engineio 3.x splits text-framed polling payloads by
        # code points where Engine.IO v3 counts UTF-16 units (see test_v4_client.py,
        # test_polling_payload_lengths_count_utf16_units), so an emoji in a payload that holds
        # another packet after it (here: the room message, then the ack) breaks its session.
        msg = {
            "text": f"from {who}: héllo ✓ ünïcödé ключ 日本 #{i}",
            "n": [i, 2.5, None, True],
            "bin": bytes([i, 0x00, 0xFF]),
            "nested": {"more": [b"\x01\x02"]},
        }
        assert send(msg) is True, who
        expected = ({"room": room, "from": sender_id, "msg": msg},)
        assert py_events.get("room-message") == expected, f"python-socketio 4.x, sent by {who}"
        assert v2.event("room-message") == expected, f"socket.io-client 2.x, sent by {who}"
        assert v4.event("room-message") == expected, f"socket.io-client 4.x, sent by {who}"

    # The python client leaves: the next broadcast reaches the two Node clients only.
    assert call(py, "leave", room) == [py_id]
    assert v4.call("to-room", room, "after leave") == (True,)
    expected = ({"room": room, "from": v4_id, "msg": "after leave"},)
    assert v2.event("room-message") == expected
    assert v4.event("room-message") == expected
    assert [e for e in py_events.drain(settle=0.5) if e[0] == "room-message"] == []
    # And the Node clients got nothing more either.
    assert v2.pending_events("room-message", settle=0.0) == []
    assert v4.pending_events("room-message", settle=0.0) == []
