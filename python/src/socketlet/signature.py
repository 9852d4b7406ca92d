"""Signatures of hook requests.

socketlet signs each hook request it sends (when it runs with ``--hook-secret``) with two
headers: ``X-Socketlet-Timestamp``, the Unix time in seconds at which it signed, and
``X-Socketlet-Signature``, the hex of HMAC-SHA256(secret, "<timestamp>.<raw body>").
"""

import hashlib
import hmac
import time

#: The header that carries the signature of a hook request.
SIGNATURE_HEADER = "X-Socketlet-Signature"
#: The header that carries the time (Unix seconds) a hook request was signed at.
TIMESTAMP_HEADER = "X-Socketlet-Timestamp"
#: How old (or how far in the future) a signed request may be, in seconds.
DEFAULT_MAX_AGE = 300

# A Unix time in seconds fits in far fewer digits; longer texts are refused before parsing.
_MAX_TIMESTAMP_DIGITS = 20


def _as_bytes(value, what):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def _timestamp_text(timestamp):
    """The timestamp as it is signed (decimal digits), or None when it is not one."""
    if isinstance(timestamp, bool):
        return None
    if isinstance(timestamp, int):
        return str(timestamp) if timestamp >= 0 else None
    if isinstance(timestamp, (bytes, bytearray)):
        try:
            timestamp = bytes(timestamp).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(timestamp, str):
        return None
    # Exactly what the header says: digits only (no sign, no spaces, no other numerals).
    if not (0 < len(timestamp) <= _MAX_TIMESTAMP_DIGITS) or not (
        timestamp.isascii() and timestamp.isdigit()
    ):
        return None
    return timestamp


def sign(secret, timestamp, body):
    """The signature of ``body`` sent at ``timestamp``: hex HMAC-SHA256(secret, "<ts>.<body>").

    ``secret`` and ``body`` are ``str`` (UTF-8) or ``bytes``; ``timestamp`` is an ``int`` or the
    header's text.
    """
    text = _timestamp_text(timestamp)
    if text is None:
        raise ValueError(f"not a timestamp: {timestamp!r}")
    message = text.encode("ascii") + b"." + _as_bytes(body, "body")
    return hmac.new(_as_bytes(secret, "secret"), message, hashlib.sha256).hexdigest()


def verify(secret, timestamp, body, signature, max_age=DEFAULT_MAX_AGE, *, now=None):
    """Whether ``signature`` is socketlet's signature of ``body`` sent at ``timestamp``.

    ``timestamp`` and ``signature`` are the values of the ``X-Socketlet-Timestamp`` and
    ``X-Socketlet-Signature`` headers (``None`` when missing), ``body`` the raw request body
    (``bytes``, exactly as received). The comparison takes constant time. A request signed more
    than ``max_age`` seconds before (or after: clocks drift) ``now`` (default: the current time)
    is refused, so that a captured request cannot be replayed later; ``max_age=None`` turns that
    check off. Never raises for bad header values: they are simply not valid.
    """
    if not secret:
        raise ValueError("an empty secret verifies nothing: pass the --hook-secret of socketlet")
    text = _timestamp_text(timestamp)
    if text is None or signature is None:
        return False
    if isinstance(signature, (bytes, bytearray)):
        try:
            signature = bytes(signature).decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(signature, str) or not signature.isascii():
        return False
    expected = sign(secret, text, body)
    # Compared before the time check, so that both take the same time whatever the outcome.
    matches = hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("ascii"))
    if max_age is not None:
        current = time.time() if now is None else now
        if abs(current - int(text)) > max_age:
            return False
    return matches


def header(headers, name):
    """The value of header ``name`` in ``headers``, whatever its case (``None`` when absent).

    ``headers`` is a mapping (a ``dict``, Django's ``request.headers``, Starlette's
    ``request.headers``...) or a list of ``(name, value)`` pairs.
    """
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        for candidate in (name, name.lower(), name.title()):
            value = getter(candidate)
            if value is not None:
                return value
        items = headers.items()
    else:
        items = headers
    lowered = name.lower()
    for key, value in items:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if key.lower() == lowered:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def verify_request(secret, headers, body, max_age=DEFAULT_MAX_AGE, *, now=None):
    """:func:`verify` with the timestamp and the signature taken from the request's ``headers``."""
    return verify(
        secret,
        header(headers, TIMESTAMP_HEADER),
        body,
        header(headers, SIGNATURE_HEADER),
        max_age,
        now=now,
    )
