"""Telling a user's browsers something, from anywhere (a worker, a view, a shell).

Two ways, chosen by settings.SOCKETLET_PUSH; both reach every tab and every socketlet node:

- "api": socketlet's server API, POST /api/emit with the API key (socketlet.Client);
- "redis": python-socketio's RedisManager(write_only=True), as a python-socketio application
  already does it; socketlet delivers what it publishes when it runs with
  --redis <the same Redis> --python-channel socketio.

A message that cannot be delivered is logged, never raised: the job's state is in the database,
and the page reads it again when it reconnects.
"""

import logging
from functools import lru_cache

import socketlet
from django.conf import settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _api():
    return socketlet.Client(settings.SOCKETLET_API_URL, settings.SOCKETLET_API_KEY, timeout=5)


@lru_cache(maxsize=None)
def _redis_manager():
    import socketio

    return socketio.RedisManager(settings.SOCKETIO_REDIS_URL, write_only=True)


def to_user(user_id, event, data):
    room = f"user:{user_id}"
    try:
        if settings.SOCKETLET_PUSH == "redis":
            _redis_manager().emit(event, data, room=room)
        else:
            _api().emit(event, data, to=room)
    except Exception as exc:  # noqa: BLE001 - a push is best effort, see above
        log.warning("could not send %s to %s: %s", event, room, exc)
