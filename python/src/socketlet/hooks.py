"""The answers a backend gives to socketlet's hooks, as JSON-ready dicts.

- connect hook: :func:`accept` or :func:`refuse`;
- event hook: :func:`ack` (with optional commands, :func:`emit` among them) or :func:`refuse`
  (the client's ack then carries ``{"error": {"message", "data"}}``);
- disconnect hook: anything (socketlet only logs a failure), ``{}`` say.

What the hooks receive (JSON bodies of POST requests):

- connect: ``{"sid", "nsp", "auth", "query", "headers", "address", "protocol", "transport"}``;
- event: ``{"sid", "nsp", "user", "data", "event", "args", "binary"}`` (see :func:`event_args`);
- disconnect: ``{"sid", "nsp", "user", "reason"}``.
"""

from .wire import pack, rooms as _rooms, unpack


def accept(user=None, rooms=(), data=None):
    """The connect hook's answer that accepts the connection: the socket is ``user``'s (any JSON
    value, seen in the event and disconnect hooks and in ``fetch_sockets``), joins ``rooms``, and
    keeps ``data`` (any JSON value) for the event hook."""
    return {"result": {"user": user, "rooms": _rooms(rooms, "rooms"), "data": data}}


def refuse(message, data=None):
    """Refuses: for the connect hook, the client's ``connect_error`` has ``message`` (and
    ``data``); for the event hook, the client's ack is ``{"error": {"message", "data"}}``."""
    if not isinstance(message, str):
        raise TypeError("the message of a refusal is a str")
    error = {"message": message}
    if data is not None:
        error["data"] = data
    return {"error": error}


def emit(event, *args, to=None):
    """A command of the event hook's answer (for ``ack(..., emit=[...])``): emit ``event`` with
    ``args`` to the rooms ``to`` (a name or a list of names) of the socket's namespace, or to the
    socket itself when ``to`` is None. ``bytes`` in ``args`` travel as binary attachments."""
    if not isinstance(event, str):
        raise TypeError("the event name is a str")
    packed, binary = pack(args)
    return {"event": event, "args": packed, "binary": binary, "rooms": _rooms(to)}


def ack(*args, join=(), leave=(), emit=(), disconnect=False):
    """The event hook's answer: the client's ack gets ``args`` (``bytes`` in them travel as binary
    attachments). Before the ack, the socket joins ``join`` and leaves ``leave`` (room names),
    the :func:`emit` commands of ``emit`` are sent, and with ``disconnect=True`` the socket is
    disconnected after the ack."""
    packed, binary = pack(args)
    result = {"ack": packed}
    if binary:
        result["ack_binary"] = binary
    if join:
        result["join"] = _rooms(join, "join")
    if leave:
        result["leave"] = _rooms(leave, "leave")
    if emit:
        commands = [emit] if isinstance(emit, dict) else list(emit)
        result["emit"] = commands
    if disconnect:
        result["disconnect"] = True
    return {"result": result}


def event_args(payload):
    """The arguments of an event hook request, with their binary attachments as ``bytes``."""
    return unpack(payload.get("args") or [], payload.get("binary") or [])
