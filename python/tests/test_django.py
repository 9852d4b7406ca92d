"""socketlet.django with Django's test client: the hook decorator (signature, JSON, answers,
CSRF, async views) and user_from_cookies (a session cookie forwarded by the connect hook).

The project is tests/django_project (in-memory SQLite, sessions in the database)."""

import json
import os
import time

import pytest

pytest.importorskip("django")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django_project import views  # noqa: E402

import socketlet  # noqa: E402

SETTINGS_SECRET = "from-settings"
EXPLICIT_SECRET = "explicit-secret"


@pytest.fixture(scope="module", autouse=True)
def database():
    call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture
def alice(database):
    User.objects.filter(username="alice").delete()
    return User.objects.create_user("alice", password="correct horse")


def signed(client, path, payload=None, *, secret, body=None, ts=None, sig=None, method="post"):
    """A request signed as socketlet signs it (``body`` overrides the JSON of ``payload``)."""
    if body is None:
        body = json.dumps(payload).encode()
    ts = int(time.time()) if ts is None else ts
    headers = {
        "X-Socketlet-Timestamp": str(ts),
        "X-Socketlet-Signature": socketlet.sign(secret, ts, body) if sig is None else sig,
    }
    return getattr(client, method)(path, data=body, content_type="application/json", headers=headers)


def connect_payload(cookie=None):
    headers = {"user-agent": "test", "origin": "http://testserver"}
    if cookie is not None:
        headers["cookie"] = cookie
    return {
        "sid": "s1",
        "nsp": "/",
        "auth": {},
        "query": {"EIO": "4"},
        "headers": headers,
        "address": "127.0.0.1",
        "protocol": 5,
        "transport": "websocket",
    }


def session_cookie(user):
    browser = Client()
    browser.force_login(user)
    return f"csrftoken=abc; sessionid={browser.cookies['sessionid'].value}; theme=dark"


def test_connect_accepts_the_user_of_the_session_cookie(alice):
    res = signed(Client(), "/hooks/connect", connect_payload(session_cookie(alice)), secret=SETTINGS_SECRET)
    assert res.status_code == 200
    assert res["Content-Type"] == "application/json"
    assert res.json() == {
        "result": {"user": alice.pk, "rooms": [f"user:{alice.pk}"], "data": {"name": "alice"}}
    }


@pytest.mark.parametrize(
    "cookie",
    [None, "", "sessionid=nonsense", "theme=dark", "sessionid=; x=1"],
)
def test_connect_refuses_without_a_valid_session(alice, cookie):
    res = signed(Client(), "/hooks/connect", connect_payload(cookie), secret=SETTINGS_SECRET)
    assert res.status_code == 200
    assert res.json() == {"error": {"message": "log in first", "data": {"code": "E_LOGIN"}}}


def test_a_session_is_void_once_the_password_changed(alice):
    cookie = session_cookie(alice)
    alice.set_password("new password")
    alice.save()
    res = signed(Client(), "/hooks/connect", connect_payload(cookie), secret=SETTINGS_SECRET)
    assert res.json()["error"]["message"] == "log in first"


def test_user_from_cookies_takes_the_cookie_string_too(alice):
    from socketlet.django import user_from_cookies

    cookie = session_cookie(alice)
    assert user_from_cookies(cookie).pk == alice.pk
    assert user_from_cookies({"Cookie": cookie}).pk == alice.pk
    assert not user_from_cookies({}).is_authenticated


def test_event_answers_acks_and_commands():
    c = Client()
    payload = {
        "sid": "s1",
        "nsp": "/",
        "user": 7,
        "data": None,
        "event": "echo",
        "args": ["hi", {"_placeholder": True, "num": 0}],
        "binary": ["AQID"],
    }
    res = signed(c, "/hooks/event", payload, secret=EXPLICIT_SECRET)
    assert res.status_code == 200
    assert res.json() == {
        "result": {"ack": ["hi", {"_placeholder": True, "num": 0}], "ack_binary": ["AQID"]}
    }

    payload.update(event="join", args=["room-9"], binary=[])
    assert signed(c, "/hooks/event", payload, secret=EXPLICIT_SECRET).json() == {
        "result": {
            "ack": [True],
            "join": ["room-9"],
            "emit": [{"event": "joined", "args": ["room-9"], "binary": [], "rooms": ["room-9"]}],
        }
    }
    payload.update(event="nothing")
    assert signed(c, "/hooks/event", payload, secret=EXPLICIT_SECRET).json() == {}
    payload.update(event="other")
    assert signed(c, "/hooks/event", payload, secret=EXPLICIT_SECRET).json() == {
        "error": {"message": "unknown event"}
    }


def test_async_views_and_responses_of_the_view_own():
    res = signed(Client(), "/hooks/event-async", {"event": "ping"}, secret=EXPLICIT_SECRET)
    assert res.status_code == 200
    assert res.json() == {"result": {"ack": ["async", "ping"]}}
    res = signed(Client(), "/hooks/raw/202", {"event": "x"}, secret=EXPLICIT_SECRET)
    assert (res.status_code, res.content) == (202, b"raw")
    # A bad signature never reaches the async view either.
    res = signed(Client(), "/hooks/event-async", {"event": "x"}, secret="wrong")
    assert res.status_code == 401


def test_disconnect_hook():
    views.DISCONNECTS.clear()
    payload = {"sid": "s1", "nsp": "/", "user": 3, "reason": "client namespace disconnect"}
    res = signed(Client(), "/hooks/disconnect", payload, secret=SETTINGS_SECRET)
    assert (res.status_code, res.json()) == (200, {})
    assert views.DISCONNECTS == [payload]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "wrong secret"},
        {"secret": SETTINGS_SECRET, "sig": "0" * 64},
        {"secret": SETTINGS_SECRET, "sig": ""},
        {"secret": SETTINGS_SECRET, "age": 302},  # a replay, too late (window: 300 s)
        {"secret": SETTINGS_SECRET, "age": -302},  # from the future
        {"secret": SETTINGS_SECRET, "ts": "soon"},
    ],
)
def test_bad_signatures_are_401(kwargs):
    views.DISCONNECTS.clear()
    if "age" in kwargs:
        kwargs = {"secret": kwargs["secret"], "ts": int(time.time()) - kwargs["age"]}
    if kwargs.get("ts") == "soon":
        body = b'{"sid": "s1"}'
        res = Client().post(
            "/hooks/disconnect",
            data=body,
            content_type="application/json",
            headers={"X-Socketlet-Timestamp": "soon", "X-Socketlet-Signature": "x"},
        )
    else:
        res = signed(Client(), "/hooks/disconnect", {"sid": "s1"}, **kwargs)
    assert res.status_code == 401
    assert "signature" in res.json()["error"]["message"]
    assert views.DISCONNECTS == []


def test_an_unsigned_request_and_a_changed_body_are_401():
    res = Client().post("/hooks/disconnect", data=b"{}", content_type="application/json")
    assert res.status_code == 401
    ts = int(time.time())
    sig = socketlet.sign(SETTINGS_SECRET, ts, b'{"user": 1}')
    res = signed(Client(), "/hooks/disconnect", body=b'{"user": 2}', secret=SETTINGS_SECRET, ts=ts, sig=sig)
    assert res.status_code == 401
    # The view's own max_age (60 s) is shorter than the default.
    res = signed(Client(), "/hooks/event", {"event": "echo"}, secret=EXPLICIT_SECRET, ts=ts - 120)
    assert res.status_code == 401


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_signed_bodies_that_are_not_json_objects_are_400(body):
    res = signed(Client(), "/hooks/disconnect", body=body, secret=SETTINGS_SECRET)
    assert res.status_code == 400


def test_only_post():
    res = Client().get("/hooks/disconnect")
    assert res.status_code == 405
    assert res["Allow"] == "POST"


def test_hooks_are_exempt_from_csrf(alice):
    strict = Client(enforce_csrf_checks=True)
    res = signed(strict, "/hooks/connect", connect_payload(session_cookie(alice)), secret=SETTINGS_SECRET)
    assert res.status_code == 200
    assert res.json()["result"]["user"] == alice.pk


def test_a_missing_secret_is_a_configuration_error():
    with override_settings(SOCKETLET_HOOK_SECRET=None):
        with pytest.raises(ImproperlyConfigured):
            signed(Client(), "/hooks/disconnect", {"sid": "s1"}, secret="anything")
