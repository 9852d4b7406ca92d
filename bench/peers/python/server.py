"""The python-socketio (aiohttp) peer of socketlet's benchmark.

Event contract (identical on every server):
  namespace "/" only;
  "echo": acks its arguments back;
  "broadcast" (with an ack): emits "broadcast" with the given arguments to every socket of "/"
  (the sender included), then acks True.

Usage: python server.py --port PORT   (prints "LISTENING PORT" once it accepts connections)
"""

import argparse
import asyncio
import signal
import sys

import socketio
from aiohttp import web


def build_app() -> web.Application:
    # Defaults otherwise: both transports, no logging.
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    @sio.on("echo")
    async def echo(sid, *args):
        # A tuple is sent back as that many ack arguments.
        return args

    @sio.on("broadcast")
    async def broadcast(sid, *args):
        await sio.emit("broadcast", args)
        return True

    return app


async def main(port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"LISTENING {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
