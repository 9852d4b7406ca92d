"""The story's stack as a peer of socketlet's benchmark: python-socketio 4.5.1 on eventlet,
served by gunicorn's eventlet worker (see gunicorn.conf.py; bench/run.sh starts it).

Event contract (identical on every server):
  namespace "/" only;
  "echo": acks its arguments back;
  "broadcast" (with an ack): emits "broadcast" with the given arguments to every socket of "/"
  (the sender included), then acks True;
  "join" (with an ack): the socket joins the room "bench", then acks True;
  "broadcast_room" (with an ack): emits "broadcast" with the given arguments to the room
  "bench", then acks True.
"""

import socketio

ROOM = "bench"

# Defaults otherwise (as the story's server): both transports, no logging.
sio = socketio.Server(async_mode="eventlet", logger=False, engineio_logger=False)
app = socketio.WSGIApp(sio)


@sio.on("echo")
def echo(sid, *args):
    # A tuple is sent back as that many ack arguments.
    return args


@sio.on("broadcast")
def broadcast(sid, *args):
    sio.emit("broadcast", args)
    return True


@sio.on("join")
def join(sid, *args):
    sio.enter_room(sid, ROOM)
    return True


@sio.on("broadcast_room")
def broadcast_room(sid, *args):
    sio.emit("broadcast", args, room=ROOM)
    return True
