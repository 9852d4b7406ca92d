"""The python-socketio emitter of socketlet's benchmark (the cluster cells' emitter path):
publishes through socketio.RedisManager(url, write_only=True), as a process that is not a
Socket.IO server would (a Django view, a Celery task).

Usage: python emit.py --redis URL [--to room|all] [--channel socketio]
Prints "READY" once it can publish; then, for each line of its standard input (a round number),
emits "broadcast" with that number to the room "bench" (or to every socket of "/"). Ends at the
end of its input.
"""

import argparse
import sys

import socketio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--to", choices=("room", "all"), default="room")
    parser.add_argument("--channel", default="socketio")
    args = parser.parse_args()
    mgr = socketio.RedisManager(args.redis, channel=args.channel, write_only=True)
    # The first publication opens the connection: open it before READY.
    mgr._redis_connect()  # noqa: SLF001 (what its first _publish does)
    mgr.redis.ping()
    print("READY", flush=True)
    room = "bench" if args.to == "room" else None
    for line in sys.stdin:
        line = line.strip()
        if not line.isdigit():
            continue
        mgr.emit("broadcast", int(line), namespace="/", room=room)


if __name__ == "__main__":
    main()
