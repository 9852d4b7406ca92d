"""Fixtures of the gateway suite's Python tests: socketlet nodes (the real binary) whose hooks
call the example backend (backend.py: Starlette on uvicorn, with the socketlet package), a
private redis-server for clusters, and python-socketio 5.x clients.

Processes log to tests/e2e/.artifacts/gateway-py-*.log. Every wait has a timeout.
"""

import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import socketio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))

from e2e import WAIT_S, Events, ServerProcess, start_socketlet  # noqa: E402

import socketlet  # noqa: E402

API_KEY = "gateway-suite-key"
HOOK_SECRET = "gateway-suite-secret"
LOG_PREFIX = "gateway-py"


def free_port():
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = ServerProcess(
        [binary, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        r".*Ready to accept connections",
        label=f"redis-{port}",
        log_prefix=LOG_PREFIX,
        what="redis-server",
        log_stdout=True,
    )
    proc.url = f"redis://127.0.0.1:{port}"
    return proc


class Gateway:
    """socketlet nodes with hooks to one backend; the backend calls node 0's API.

    ``nodes``: the socketlet processes (``url``); ``backend_url``; ``api(i)``: a
    ``socketlet.Client`` of node ``i``; ``connect(i, ...)``: a python-socketio client of node
    ``i``; ``recorded(kind)``: what the backend's hooks got (``connects``, ``disconnects``)."""

    def __init__(self, nodes=1, redis=False, extra_args=()):
        self._stops = []
        self.clients = []
        try:
            backend_port = free_port()
            self.backend_url = f"http://127.0.0.1:{backend_port}"
            args = [
                "--api-key",
                API_KEY,
                "--hook-secret",
                HOOK_SECRET,
                "--hook-connect",
                f"{self.backend_url}/socketlet/connect",
                "--hook-event",
                f"{self.backend_url}/socketlet/event",
                "--hook-disconnect",
                f"{self.backend_url}/socketlet/disconnect",
                *extra_args,
            ]
            if redis:
                self.redis = start_redis()
                self._stops.append(self.redis.stop)
                args += ["--redis", self.redis.url]
            self.nodes = []
            for i in range(nodes):
                node = start_socketlet(LOG_PREFIX, label=f"node{i}", args=args)
                self._stops.append(node.stop)
                self.nodes.append(node)
            self.backend = ServerProcess(
                [
                    sys.executable,
                    HERE / "backend.py",
                    "--port",
                    backend_port,
                    "--secret",
                    HOOK_SECRET,
                    "--api-url",
                    self.nodes[0].url,
                    "--api-key",
                    API_KEY,
                ],
                r"BACKEND LISTENING (\d+)",
                label=f"backend-{backend_port}",
                log_prefix=LOG_PREFIX,
                what="backend",
                log_stdout=True,
            )
            self._stops.append(self.backend.stop)
        except BaseException:
            self.close()
            raise

    def api(self, i=0):
        return socketlet.Client(self.nodes[i].url, API_KEY)

    def recorded(self, kind):
        with urllib.request.urlopen(f"{self.backend_url}/test/{kind}", timeout=WAIT_S) as res:
            return json.loads(res.read())

    def connect(self, i=0, token=None, record=(), transports=("websocket",), auth=None):
        """A connected client of node ``i`` with ``auth={"token": token}``; returns ``(client,
        events)``. Raises ``socketio.exceptions.ConnectionError`` when refused (``events``
        then holds the ``connect_error``: see ``try_connect``)."""
        client, events = self.client(record)
        client.connect(
            self.nodes[i].url,
            auth=auth if auth is not None else ({"token": token} if token else None),
            transports=list(transports),
            wait_timeout=WAIT_S,
        )
        return client, events

    def client(self, record=()):
        client = socketio.Client(reconnection=False, request_timeout=WAIT_S, handle_sigint=False)
        self.clients.append(client)
        events = Events()
        for name in (*record, "connect_error", "disconnect"):
            client.on(name, events.handler(name))
        return client, events

    def close(self):
        for client in self.clients:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass
        errors = []
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        if errors:
            raise errors[0]


def until(predicate, what, timeout=WAIT_S):
    """Waits (bounded) for ``predicate()`` to be true; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def single():
    """One node and the backend, for a whole test module."""
    gateway = Gateway(nodes=1)
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def cluster():
    """Two nodes on a private redis-server, and the backend (which calls node 0's API)."""
    gateway = Gateway(nodes=2, redis=True)
    yield gateway
    gateway.close()


_ids = iter(range(1, 1_000_000))


@pytest.fixture
def uid():
    """A user id no other test of this run uses."""
    return lambda name: f"{name}{os.getpid()}x{next(_ids)}"
