"""The server API's commands, built but not sent: what :meth:`socketlet.Client.batch` takes, and
what each method of :class:`socketlet.Client` sends.

Every command that targets sockets selects them the same way: the sockets of namespace ``nsp``
in any of the rooms ``to`` (a name or a list), plus the sockets whose ids are in ``sids``, minus
those in any of the rooms ``except_``. With neither ``to`` nor ``sids``: every socket of ``nsp``.
"""

from collections import namedtuple

from .wire import pack, rooms as _rooms

#: One API call: ``method`` (``"emit"``...) and its JSON ``body``.
Command = namedtuple("Command", ["method", "body"])


def _selection(to, sids, except_, nsp):
    if not isinstance(nsp, str):
        raise TypeError("nsp is a str")
    return {
        "nsp": nsp,
        "rooms": _rooms(to),
        "except": _rooms(except_, "except_"),
        "sids": _rooms(sids, "sids"),
    }


def emit(
    event,
    *args,
    to=None,
    sids=None,
    except_=None,
    nsp="/",
    volatile=False,
    ack_timeout_ms=None,
):
    """Emit ``event`` with ``args`` (``bytes`` anywhere in them travel as binary attachments).
    ``volatile``: dropped for sockets that cannot take it right now. ``ack_timeout_ms``: ask each
    socket for an ack, and wait that long for them."""
    if not isinstance(event, str):
        raise TypeError("the event name is a str")
    packed, binary = pack(args)
    body = _selection(to, sids, except_, nsp)
    body.update(event=event, args=packed, binary=binary, volatile=bool(volatile))
    if ack_timeout_ms is not None:
        if isinstance(ack_timeout_ms, bool) or not isinstance(ack_timeout_ms, int):
            raise TypeError("ack_timeout_ms is an int (milliseconds)")
        if ack_timeout_ms < 0:
            raise ValueError("ack_timeout_ms is not negative")
        body["ack_timeout_ms"] = ack_timeout_ms
    return Command("emit", body)


def join(rooms, *, to=None, sids=None, except_=None, nsp="/"):
    """Make the selected sockets join ``rooms`` (a name or a list)."""
    body = _selection(to, sids, except_, nsp)
    body["join"] = _rooms(rooms, "rooms")
    return Command("sockets_join", body)


def leave(rooms, *, to=None, sids=None, except_=None, nsp="/"):
    """Make the selected sockets leave ``rooms`` (a name or a list)."""
    body = _selection(to, sids, except_, nsp)
    body["leave"] = _rooms(rooms, "rooms")
    return Command("sockets_leave", body)


def disconnect(*, to=None, sids=None, except_=None, nsp="/", close=False):
    """Disconnect the selected sockets from ``nsp``; with ``close=True``, close their whole
    connections (every namespace). Careful: with neither ``to`` nor ``sids``, that is every
    socket of ``nsp``."""
    body = _selection(to, sids, except_, nsp)
    body["close"] = bool(close)
    return Command("disconnect_sockets", body)


def fetch_sockets(*, to=None, sids=None, except_=None, nsp="/"):
    """List the selected sockets (across the cluster)."""
    return Command("fetch_sockets", _selection(to, sids, except_, nsp))


def rooms(nsp="/"):
    """List the rooms of ``nsp`` with their numbers of sockets (across the cluster)."""
    if not isinstance(nsp, str):
        raise TypeError("nsp is a str")
    return Command("rooms", {"nsp": nsp})
