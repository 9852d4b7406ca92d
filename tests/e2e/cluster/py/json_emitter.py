"""Publishes on python-socketio's message queue as a Django view or a Celery worker would, with
python-socketio 5.x's own ``socketio.RedisManager(url, write_only=True)`` (JSON messages, 5.14+).

Usage: json_emitter.py REDIS_URL OPS_JSON

OPS_JSON is a list of operations, run in order:
  ["emit", event, data, {"room": ..., "to": ..., "skip_sid": ..., "namespace": ...}]
  ["enter_room", sid, namespace, room]
  ["leave_room", sid, namespace, room]
  ["close_room", room, namespace]
  ["disconnect", sid, namespace]
In `data`, {"$bytes": "<hex>"} stands for bytes and {"$tuple": [...]} for a tuple (several
arguments).
"""

import json
import sys
from importlib.metadata import version

import socketio


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        if set(value) == {"$tuple"}:
            return tuple(decode(v) for v in value["$tuple"])
        return {k: decode(v) for k, v in value.items()}
    return value


def apply(mgr, ops, allowed=None):
    """Runs the operations of OPS_JSON on ``mgr`` (only those named in ``allowed``, if given)."""
    for op in ops:
        name, args = op[0], op[1:]
        if allowed is not None and name not in allowed:
            raise SystemExit(f"unknown operation {name!r}")
        if name == "emit":
            event, data, kwargs = args
            mgr.emit(event, decode(data), **kwargs)
        elif name == "enter_room":
            mgr.enter_room(*args)
        elif name == "leave_room":
            mgr.leave_room(*args)
        elif name == "close_room":
            mgr.close_room(*args)
        elif name == "disconnect":
            sid, namespace = args
            try:
                mgr.disconnect(sid, namespace)
            except AttributeError:
                # python-socketio 5.x's disconnect() first handles the message in this process,
                # and a write-only manager has no server to do it with ('NoneType' object has no
                # attribute 'disconnect'), so it never publishes. Publish the very message
                # disconnect() builds.
                mgr._publish({"method": "disconnect", "sid": sid,
                              "namespace": namespace or "/", "host_id": mgr.host_id})
        else:
            raise SystemExit(f"unknown operation {name!r}")


def main():
    url, ops = sys.argv[1], json.loads(sys.argv[2])
    apply(socketio.RedisManager(url, write_only=True), ops)
    print(f"python-socketio {version('python-socketio')}: published {len(ops)} operation(s)")


if __name__ == "__main__":
    main()
