"""socketlet's hooks as Django views.

    # urls.py: path("socketlet/connect", views.connect), and so on.
    import socketlet.django as sl

    @sl.hook  # the secret is settings.SOCKETLET_HOOK_SECRET
    def connect(request, payload):
        user = sl.user_from_cookies(payload["headers"])  # socketlet --hook-forward-cookie
        if not user.is_authenticated:
            return sl.refuse("log in first")
        return sl.accept(user.pk, rooms=[f"user:{user.pk}"])

    @sl.hook(secret="...")
    def event(request, payload):
        if payload["event"] == "ping":
            return sl.ack("pong")
        return sl.refuse("unknown event")

The decorated view takes the request and the hook's JSON payload (a dict) and returns the
answer: a dict (or list) sent as JSON, None for ``{}``, or an ``HttpResponse`` sent as it is. The
decorator answers 405 to anything but POST, 401 when the signature is wrong or stale, 400 when the
body is not a JSON object, and exempts the view from Django's CSRF check (the signature is what
authenticates socketlet). Async views work too.
"""

import functools
import inspect
import json
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from .hooks import accept, ack, emit, event_args, refuse
from .signature import DEFAULT_MAX_AGE, header, verify_request

__all__ = ["accept", "ack", "emit", "event_args", "hook", "refuse", "user_from_cookies"]

try:  # Django >= 4.1 (asgiref >= 3.6): tells and marks async views as Django does.
    from asgiref.sync import iscoroutinefunction as _is_async
    from asgiref.sync import markcoroutinefunction as _mark_async
except ImportError:  # pragma: no cover - older asgiref
    _is_async = inspect.iscoroutinefunction
    _mark_async = None


def _secret_of(secret):
    value = secret if secret is not None else getattr(settings, "SOCKETLET_HOOK_SECRET", None)
    if not value:
        raise ImproperlyConfigured(
            "socketlet.django.hook needs a secret: hook(secret=...) or "
            "settings.SOCKETLET_HOOK_SECRET (socketlet's --hook-secret)"
        )
    return value


def _problem(status, message):
    response = JsonResponse({"error": {"message": message}}, status=status)
    if status == 405:
        response["Allow"] = "POST"
    return response


def _check(request, secret, max_age):
    """The hook's payload, or the response refusing the request."""
    if request.method != "POST":
        return None, _problem(405, "hooks are POSTed")
    body = request.body
    if not verify_request(_secret_of(secret), request.headers, body, max_age):
        return None, _problem(401, "missing, wrong or stale signature")
    try:
        payload = json.loads(body)
    except ValueError:
        return None, _problem(400, "the body is not JSON")
    if not isinstance(payload, dict):
        return None, _problem(400, "the body is not a JSON object")
    return payload, None


def _respond(answer):
    if isinstance(answer, HttpResponseBase):
        return answer
    return JsonResponse({} if answer is None else answer, safe=False)


def hook(view=None, *, secret=None, max_age=DEFAULT_MAX_AGE):
    """Makes ``view(request, payload, *args, **kwargs)`` a socketlet hook endpoint (see the
    module's documentation). ``secret``: socketlet's ``--hook-secret`` (default:
    ``settings.SOCKETLET_HOOK_SECRET``, read at each request); ``max_age``: the replay window in
    seconds. Use it bare (``@hook``) or with arguments (``@hook(secret=...)``)."""

    def decorate(view):
        if _is_async(view):

            async def wrapper(request, *args, **kwargs):
                payload, problem = _check(request, secret, max_age)
                if problem is not None:
                    return problem
                return _respond(await view(request, payload, *args, **kwargs))

            if _mark_async is not None:
                _mark_async(wrapper)
        else:

            def wrapper(request, *args, **kwargs):
                payload, problem = _check(request, secret, max_age)
                if problem is not None:
                    return problem
                return _respond(view(request, payload, *args, **kwargs))

        return csrf_exempt(functools.wraps(view)(wrapper))

    if view is not None:
        return decorate(view)
    return decorate


def user_from_cookies(headers):
    """The Django user whose session cookie the connect hook's ``headers`` carry, or an
    ``AnonymousUser``.

    socketlet passes the handshake's ``Cookie`` header to the connect hook when it runs with
    ``--hook-forward-cookie``: ``headers`` is the payload's ``"headers"`` (or the cookie string
    itself). The session is read with ``settings.SESSION_ENGINE`` and the user with the
    authentication backend that logged them in, as Django's own middleware does (a session
    whose password hash no longer matches gives no user). Check ``headers.get("origin")`` too
    when there is one: a cookie rides along whatever site opened the WebSocket (browsers send no
    ``Origin`` on same-origin polling requests, so refuse a wrong one, not a missing one).
    """
    from django.contrib.auth import get_user
    from django.http.cookie import parse_cookie

    cookie = headers if isinstance(headers, str) else header(headers, "cookie")
    request = HttpRequest()
    request.COOKIES = parse_cookie(cookie or "")
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    return get_user(request)
