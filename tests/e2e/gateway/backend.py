"""The example backend of the gateway suite: a Starlette app on uvicorn that runs socketlet's
hooks with the ``socketlet`` Python package (python/, installed into the suite's venv).

    python backend.py --port PORT --secret SECRET --api-url URL --api-key KEY

Prints ``BACKEND LISTENING <port>`` once it accepts connections. socketlet runs with
``--hook-connect http://127.0.0.1:PORT/socketlet/connect`` (and ``/event``, ``/disconnect``),
``--hook-secret SECRET``; the backend calls socketlet's API at URL with KEY.

- connect: the client's ``auth`` must be ``{"token": "token-<user id>"}`` (ids: lowercase
  letters and digits); the socket is then that user's and joins ``user:<id>``. Anything else is
  refused with ``invalid token`` (data ``{"code": "E_TOKEN"}``).
- events (the ack answers):
  ``whoami`` -> ``{"user", "sid", "nsp", "data"}``; ``echo`` -> the same args, binary included;
  ``notify`` ``({"to": id, "text": t})`` -> the backend emits ``notification``
  ``{"from": user, "text": t}`` to room ``user:<to>`` through the API, and acks
  ``{"sockets": <how many sockets that room has, by the API's fetch_sockets>}``;
  ``join`` ``(room)`` -> joins, acks ``true``; ``say`` ``(room, text)`` -> emits ``said``
  ``{"from": user, "text": text}`` to the room (a command of the hook's answer), acks ``true``;
  ``bye`` -> acks ``"bye"`` and the socket is disconnected; anything else is refused with
  ``unknown event: <name>``.
- disconnect: recorded.

For the tests only: ``GET /test/connects``, ``GET /test/disconnects`` (the payloads the hooks
got) and ``GET /test/stats`` (``{"bad_signatures": n}``).
"""

import argparse
import json
import re
import socket
import sys
import threading

import socketlet
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = re.compile(r"token-([a-z0-9]{1,32})")


class Backend:
    def __init__(self, secret, api):
        self.secret = secret
        self.api = api
        self.lock = threading.Lock()
        self.connects = []
        self.disconnects = []
        self.bad_signatures = 0

    # ---- the hooks ------------------------------------------------------------------------

    async def connect(self, payload):
        with self.lock:
            self.connects.append(payload)
        auth = payload.get("auth")
        token = auth.get("token") if isinstance(auth, dict) else None
        m = TOKEN.fullmatch(token) if isinstance(token, str) else None
        if m is None:
            return socketlet.refuse("invalid token", {"code": "E_TOKEN"})
        user = m.group(1)
        return socketlet.accept(
            user,
            rooms=[f"user:{user}"],
            data={"transport": payload.get("transport"), "protocol": payload.get("protocol")},
        )

    async def event(self, payload):
        name = payload.get("event")
        user = payload.get("user")
        args = socketlet.event_args(payload)
        if name == "whoami":
            return socketlet.ack(
                {"user": user, "sid": payload.get("sid"), "nsp": payload.get("nsp"), "data": payload.get("data")}
            )
        if name == "echo":
            return socketlet.ack(*args)
        if name == "notify":
            target, text = args[0]["to"], args[0]["text"]
            room = f"user:{target}"
            try:
                sockets = await run_in_threadpool(self.api.fetch_sockets, to=room)
                await run_in_threadpool(
                    self.api.emit, "notification", {"from": user, "text": text}, to=room
                )
            except socketlet.ApiError as exc:
                return socketlet.refuse(f"the API failed: {exc.code}", {"message": exc.message})
            return socketlet.ack({"sockets": len(sockets)})
        if name == "join":
            return socketlet.ack(True, join=[args[0]])
        if name == "say":
            room, text = args
            return socketlet.ack(
                True, emit=[socketlet.emit("said", {"from": user, "text": text}, to=room)]
            )
        if name == "bye":
            return socketlet.ack("bye", disconnect=True)
        return socketlet.refuse(f"unknown event: {name}")

    async def disconnect(self, payload):
        with self.lock:
            self.disconnects.append(payload)
        return {}

    # ---- HTTP -------------------------------------------------------------------------------

    def hook(self, handler):
        """A Starlette endpoint: signature, JSON, then ``handler(payload)``'s answer as JSON."""

        async def endpoint(request):
            body = await request.body()
            if not socketlet.verify_request(self.secret, request.headers, body):
                with self.lock:
                    self.bad_signatures += 1
                return JSONResponse({"error": {"message": "bad signature"}}, status_code=401)
            try:
                payload = json.loads(body)
            except ValueError:
                return JSONResponse({"error": {"message": "not JSON"}}, status_code=400)
            return JSONResponse(await handler(payload))

        return endpoint

    def app(self):
        def recorded(attr):
            async def endpoint(request):
                with self.lock:
                    return JSONResponse(list(getattr(self, attr)))

            return endpoint

        async def stats(request):
            with self.lock:
                return JSONResponse({"bad_signatures": self.bad_signatures})

        return Starlette(
            routes=[
                Route("/socketlet/connect", self.hook(self.connect), methods=["POST"]),
                Route("/socketlet/event", self.hook(self.event), methods=["POST"]),
                Route("/socketlet/disconnect", self.hook(self.disconnect), methods=["POST"]),
                Route("/test/connects", recorded("connects")),
                Route("/test/disconnects", recorded("disconnects")),
                Route("/test/stats", stats),
            ]
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()

    backend = Backend(args.secret, socketlet.Client(args.api_url, args.api_key, timeout=5))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    # Listening before the line below: a connection made right after it waits in the backlog.
    sock.listen(128)
    print(f"BACKEND LISTENING {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(backend.app(), log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
