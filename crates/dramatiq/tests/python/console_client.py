"""A Socket.IO client of the VM console (python-socketio 5.x): opens VMs and prints what it got.

    .venv/bin/python console_client.py http://127.0.0.1:PORT web-1 db-1 legacy-1

Connects to `/`, emits `open_vms` with those VMs of the console's catalogue (with an ack), then
waits for `vm_response`. Prints one JSON object on stdout:
`{"sid", "ack", "progress": [...], "response", "disconnected"}`. Exits 1 when no `vm_response`
came within 60 s.
"""

from __future__ import annotations

import json
import sys
import threading

import socketio

CATALOGUE = {
    "web-1": {"vcpus": 2, "memory_mb": 2048, "image": "debian-12.qcow2"},
    "db-1": {"vcpus": 8, "memory_mb": 16384, "image": "postgres-16.qcow2"},
    "legacy-1": {"vcpus": 1, "memory_mb": 1024, "image": "broken-centos-6.qcow2"},
}


def main() -> int:
    url, names = sys.argv[1], sys.argv[2:]
    vms = [{"name": n, **CATALOGUE[n]} for n in names]
    client = socketio.Client(reconnection=False)
    out = {"progress": [], "disconnected": False}
    done = threading.Event()

    @client.on("vm_progress")
    def on_progress(event):
        out["progress"].append(event)

    @client.on("vm_response")
    def on_response(response):
        out["response"] = response
        done.set()

    @client.on("disconnect")
    def on_disconnect(*_reason):
        out["disconnected"] = True

    client.connect(url, transports=["websocket"], wait_timeout=10)
    out["sid"] = client.get_sid("/")
    out["ack"] = client.call("open_vms", vms, timeout=10)
    ok = done.wait(60)
    # The console disconnects the client after vm_response (unless --vm-keep-connected).
    client.sleep(0.3)
    if client.connected:
        client.disconnect()
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
