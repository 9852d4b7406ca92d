"""The story behind socketlet, replayed with python-socketio 5.x against the real binary.

A Django app on python-socketio opened virtual machines in a background task, waited for every
result, emitted ``vm_response`` to the requesting client and disconnected it. Here the client does
what that app's browsers did: connect, emit ``open_vms``, receive ``vm_progress`` events and
``vm_response``, then get disconnected by the server.
"""

import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import socketio

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("SOCKETLET_BIN", REPO / "target" / "debug" / "socketlet"))
WAIT_S = 15.0


@pytest.fixture(scope="module")
def binary_url():
    if not BINARY.exists():
        pytest.fail(f"socketlet binary not found at {BINARY}; build it with `cargo build -p socketlet-cli`")
    proc = subprocess.Popen(
        [str(BINARY), "--addr", "127.0.0.1:0", "--vm-time-scale", "0.05", "--vm-failure-rate", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(raw.decode("utf-8", "replace")) for raw in proc.stdout],
        daemon=True,
    ).start()
    try:
        line = lines.get(timeout=10)
    except queue.Empty:
        proc.kill()
        pytest.fail("the socketlet binary did not say where it listens within 10 s")
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
    assert m, line
    yield m.group(1)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the binary did not exit within 10 s of SIGTERM")
    assert proc.returncode == 0, f"graceful shutdown exits 0, got {proc.returncode}"


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
