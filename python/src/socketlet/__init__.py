"""socketlet for Python backends: check the signature of socketlet's hook requests, answer
them, and push to clients through socketlet's server API.

    import socketlet

    api = socketlet.Client("http://127.0.0.1:3000", api_key="...")
    api.emit("news", {"title": "hello"}, to="user:42")

    # in a hook view, with the raw body and the request headers:
    if not socketlet.verify_request(SECRET, request.headers, body):
        ...  # answer 401
    return socketlet.accept(user=42, rooms=["user:42"])

The core uses the standard library only; :mod:`socketlet.django` adds a view decorator for
Django.
"""

from . import commands
from .client import ApiError, Client
from .hooks import accept, ack, emit, event_args, refuse
from .signature import (
    DEFAULT_MAX_AGE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    header,
    sign,
    verify,
    verify_request,
)
from .wire import pack, unpack

__version__ = "0.2.0"


def __getattr__(name):
    # `socketlet.django` without `import socketlet.django` (it needs Django: imported on use).
    if name == "django":
        import importlib

        return importlib.import_module(".django", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ApiError",
    "Client",
    "DEFAULT_MAX_AGE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "accept",
    "ack",
    "commands",
    "emit",
    "event_args",
    "header",
    "pack",
    "refuse",
    "sign",
    "unpack",
    "verify",
    "verify_request",
]
