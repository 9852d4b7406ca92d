"""The story behind socketlet, replayed with python-socketio 5.x against the real binary.

A Django app on python-socketio opened virtual machines in a background task, waited for every
result, emitted ``vm_response`` to the requesting client and disconnected it. Here the client does
what that app's browsers did: connect, emit ``open_vms``, receive ``vm_progress`` events and
``vm_response``, then get disconnected by the server.
"""

import queue
import threading
import time

import pytest
import socketio
from e2e import start_socketlet

WAIT_S = 15.0


@pytest.fixture(scope="module")
def binary_url():
    # Its log: tests/e2e/.artifacts/python-story-*.log.
    binary = start_socketlet(
        "python", label="story", args=("--vm-time-scale", "0.05", "--vm-failure-rate", "0")
    )
    yield binary.url
    code = binary.terminate(timeout=10.0)
    assert code == 0, f"graceful shutdown exits 0, got {code}"


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], None], ids=["polling", "websocket", "default"])
def test_open_vms_story(binary_url, transports):
    client = socketio.Client(reconnection=False)
    progress = queue.Queue()
    response = queue.Queue()
    disconnected = threading.Event()
    client.on("vm_progress", lambda p: progress.put(p))
    client.on("vm_response", lambda r: response.put(r))
    client.on("disconnect", lambda *args: disconnected.set())
    client.connect(binary_url, transports=transports, wait_timeout=WAIT_S)
    try:
        catalog = client.call("list_vms", timeout=WAIT_S)
        assert catalog["simulated"] is True
        by_name = {vm["name"]: vm for vm in catalog["vms"]}
        configs = [by_name["web-1"], by_name["db-1"], by_name["legacy-1"]]

        ack = client.call("open_vms", configs, timeout=WAIT_S)
        jobs = {j["job"]: j["vm"] for j in ack["jobs"]}
        assert sorted(jobs.values()) == ["db-1", "legacy-1", "web-1"]

        result = response.get(timeout=WAIT_S)
        assert result["complete"] is True
        status = {r["vm"]: r["status"] for r in result["results"]}
        assert status == {"web-1": "done", "db-1": "done", "legacy-1": "failed"}
        done = {r["vm"]: r["value"] for r in result["results"] if r["status"] == "done"}
        assert done["db-1"]["state"] == "running"

        seen = []
        while not progress.empty():
            seen.append(progress.get_nowait())
        assert {p["job"] for p in seen} == set(jobs), "progress for every job"
        assert all(p["vm"] == jobs[p["job"]] for p in seen)
        fractions = [p["fraction"] for p in seen if p["event"] == "progress"]
        assert fractions and all(0 <= f <= 1 for f in fractions)
        assert any(p["event"] == "failed" and "did not boot" in p["error"] for p in seen)

        # As in the story, the server disconnects the client once it has the results.
        assert disconnected.wait(WAIT_S), "the server did not disconnect the client"
    finally:
        deadline = time.monotonic() + 2
        if client.connected and time.monotonic() < deadline:
            client.disconnect()
