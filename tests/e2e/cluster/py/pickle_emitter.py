"""Publishes on python-socketio's message queue with python-socketio 4.5.1's own
``socketio.RedisManager(url, write_only=True)``, which pickles every message (as all versions
before 5.14 did).

Usage: pickle_emitter.py REDIS_URL OPS_JSON [PROTOCOL]

PROTOCOL (default: the Python's default, 4 on Python 3.8+) is the pickle protocol: 0 publishes
what 4.5.1 publishes on Python 2.7, whose `pickle.dumps` defaults to protocol 0 (as Python 3
writes protocol 0: text as UNICODE; bytes would need a global, `_codecs.encode`, so leave them out).

OPS_JSON is a list of operations, run in order:
  ["emit", event, data, {"room": ..., "skip_sid": ..., "namespace": ...}]
  ["close_room", room, namespace]
In `data`, {"$bytes": "<hex>"} stands for bytes and {"$tuple": [...]} for a tuple (several
arguments).
"""

import json
import pickle
import sys
from importlib.metadata import version

import socketio

from json_emitter import apply


def main():
    url, ops = sys.argv[1], json.loads(sys.argv[2])
    if len(sys.argv) > 3:
        protocol = int(sys.argv[3])

        class Manager(socketio.RedisManager):
            # 4.5.1's own _publish, with the protocol given.
            def _publish(self, data):
                return self.redis.publish(self.channel, pickle.dumps(data, protocol=protocol))
    else:
        Manager = socketio.RedisManager
    apply(Manager(url, write_only=True), ops, allowed=("emit", "close_room"))
    print(f"python-socketio {version('python-socketio')}: published {len(ops)} pickled operation(s)")


if __name__ == "__main__":
    main()
