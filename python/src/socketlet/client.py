"""The client of socketlet's server API (``POST /api/<method>``), on the standard library only."""

import json
import socket
import urllib.error
import urllib.request

from . import commands as _commands
from .wire import unpack

__all__ = ["ApiError", "Client"]


class ApiError(Exception):
    """A failed API call.

    ``status`` is the HTTP status (0 when no answer came: the server could not be reached, or
    did not answer within the timeout), ``code`` a stable word (``bad_request``,
    ``unauthorized``, ``not_found``, ``unknown_namespace``, ``too_large``,
    ``cluster_unreachable``...; ``unreachable`` and ``timeout`` when no answer came), and
    ``message`` what went wrong.
    """

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self):
        return f"ApiError({self.status!r}, {self.code!r}, {self.message!r})"


def _decode_acks(answer):
    """An emit's answer with ``ack_timeout_ms``: each ack's args with their attachments as bytes."""
    if not isinstance(answer, dict) or "acks" not in answer:
        return None
    out = dict(answer)
    out["acks"] = [
        {"id": a.get("id"), "args": unpack(a.get("args"), a.get("binary"))}
        for a in answer.get("acks") or []
    ]
    return out


def _finish(method, result):
    """What a client method returns for a successful call of ``method``."""
    if method == "emit":
        return _decode_acks(result)
    if method == "rooms":
        return {r["room"]: r["sockets"] for r in result}
    if method == "fetch_sockets":
        return result
    return None


class Client:
    """The server API of one socketlet server (or cluster: every call reaches every node).

    ``url`` is the server's address: the public one (``http://127.0.0.1:3000``: the API is under
    ``/api/``), or the one of ``--api-addr``; a URL ending in ``/api`` is taken as the API's own.
    ``api_key`` is one of the server's ``--api-key``. ``timeout`` (seconds) bounds each call.

    Every method raises :class:`ApiError` when the call fails. The selection arguments (``to``,
    ``sids``, ``except_``, ``nsp``) are those of :mod:`socketlet.commands`.
    """

    def __init__(self, url, api_key, timeout=5):
        if not api_key:
            raise ValueError("an API key is needed (socketlet's --api-key)")
        base = url.rstrip("/")
        if not base.endswith("/api"):
            base += "/api"
        self.api_url = base
        self.timeout = timeout
        self._auth = f"Bearer {api_key}"

    def __repr__(self):
        return f"Client({self.api_url!r})"

    def call(self, method, body):
        """POSTs ``body`` to ``/api/<method>`` and returns the decoded JSON answer."""
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
        request = urllib.request.Request(
            f"{self.api_url}/{method}",
            data=data,
            method="POST",
            headers={
                "Authorization": self._auth,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "socketlet-python",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except (socket.timeout, TimeoutError) as exc:
            raise ApiError(0, "timeout", f"no answer within {self.timeout} s: {exc}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise ApiError(0, "timeout", f"no answer within {self.timeout} s") from None
            raise ApiError(0, "unreachable", f"{self.api_url}: {reason}") from None
        except OSError as exc:
            raise ApiError(0, "unreachable", f"{self.api_url}: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(200, "bad_answer", f"the answer is not JSON: {raw[:200]!r}") from None

    @staticmethod
    def _error(exc):
        try:
            raw = exc.read()
        except OSError:
            raw = b""
        finally:
            exc.close()
        try:
            error = json.loads(raw)["error"]
            return ApiError(exc.code, str(error["code"]), str(error["message"]))
        except (ValueError, KeyError, TypeError):
            text = raw[:200].decode("utf-8", "replace") or exc.reason
            return ApiError(exc.code, "http_error", str(text))

    def _run(self, command):
        return _finish(command.method, self.call(command.method, command.body))

    def emit(
        self,
        event,
        *args,
        to=None,
        sids=None,
        except_=None,
        nsp="/",
        volatile=False,
        ack_timeout_ms=None,
    ):
        """Emits ``event`` with ``args`` to the selected sockets (every socket of ``nsp`` when
        neither ``to`` nor ``sids`` is given); ``bytes`` in ``args`` travel as binary.

        Returns None; with ``ack_timeout_ms``, waits that long for the sockets' acks and returns
        ``{"acks": [{"id", "args"}], "missing": [ids], "missing_remote": n, "silent_nodes": n,
        "cluster_error": str or None}`` (binary attachments of the acks as ``bytes``)."""
        return self._run(
            _commands.emit(
                event,
                *args,
                to=to,
                sids=sids,
                except_=except_,
                nsp=nsp,
                volatile=volatile,
                ack_timeout_ms=ack_timeout_ms,
            )
        )

    def join(self, rooms, *, to=None, sids=None, except_=None, nsp="/"):
        """Makes the selected sockets join ``rooms``."""
        self._run(_commands.join(rooms, to=to, sids=sids, except_=except_, nsp=nsp))

    def leave(self, rooms, *, to=None, sids=None, except_=None, nsp="/"):
        """Makes the selected sockets leave ``rooms``."""
        self._run(_commands.leave(rooms, to=to, sids=sids, except_=except_, nsp=nsp))

    def disconnect(self, *, to=None, sids=None, except_=None, nsp="/", close=False):
        """Disconnects the selected sockets (``close=True``: their whole connections). With
        neither ``to`` nor ``sids``, every socket of ``nsp``."""
        self._run(
            _commands.disconnect(to=to, sids=sids, except_=except_, nsp=nsp, close=close)
        )

    def fetch_sockets(self, *, to=None, sids=None, except_=None, nsp="/"):
        """The selected sockets: ``[{"id", "nsp", "rooms", "user", "data", "handshake"}]``."""
        return self._run(_commands.fetch_sockets(to=to, sids=sids, except_=except_, nsp=nsp))

    def rooms(self, nsp="/"):
        """The rooms of ``nsp`` (sockets' own ids left out): ``{room: number of sockets}``."""
        return self._run(_commands.rooms(nsp))

    def batch(self, commands):
        """Runs several commands (of :mod:`socketlet.commands`) in one request, in order.

        Returns one item per command: what the matching method returns, or an
        :class:`ApiError` (not raised) for a command that failed. Raises :class:`ApiError` when
        the batch as a whole fails."""
        commands = [c if isinstance(c, _commands.Command) else _command(c) for c in commands]
        answers = self.call("batch", {"commands": [{c.method: c.body} for c in commands]})
        out = []
        for command, answer in zip(commands, answers):
            if isinstance(answer, dict) and "error" in answer:
                error = answer["error"]
                out.append(ApiError(200, str(error.get("code")), str(error.get("message"))))
            else:
                out.append(_finish(command.method, answer.get("result")))
        return out


def _command(raw):
    """A command given as the API's own ``{"<method>": body}``."""
    if isinstance(raw, tuple) and len(raw) == 2:
        return _commands.Command(*raw)
    if isinstance(raw, dict) and len(raw) == 1:
        return _commands.Command(*next(iter(raw.items())))
    raise TypeError(f"not a command: {raw!r} (use socketlet.commands)")
