"""Hook views as a Django project would write them with socketlet.django."""

from django.http import HttpResponse

import socketlet.django as sl

#: The disconnect hook's payloads, for the tests to look at.
DISCONNECTS = []


@sl.hook  # the secret is settings.SOCKETLET_HOOK_SECRET
def connect(request, payload):
    user = sl.user_from_cookies(payload.get("headers") or {})
    if not user.is_authenticated:
        return sl.refuse("log in first", {"code": "E_LOGIN"})
    return sl.accept(user.pk, rooms=[f"user:{user.pk}"], data={"name": user.get_username()})


@sl.hook(secret="explicit-secret", max_age=60)
def event(request, payload):
    args = sl.event_args(payload)
    if payload["event"] == "echo":
        return sl.ack(*args)
    if payload["event"] == "join":
        return sl.ack(True, join=args[0], emit=sl.emit("joined", args[0], to=args[0]))
    if payload["event"] == "nothing":
        return None
    return sl.refuse("unknown event")


@sl.hook(secret="explicit-secret")
async def event_async(request, payload):
    return sl.ack("async", payload["event"])


@sl.hook
def disconnect(request, payload):
    DISCONNECTS.append(payload)
    return {}


@sl.hook(secret="explicit-secret")
def raw(request, payload, code):
    return HttpResponse(b"raw", status=code, content_type="text/plain")
