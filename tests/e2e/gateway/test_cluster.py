"""The gateway across two socketlet nodes on a private redis-server, with python-socketio 5.x
clients: the backend calls node A's API only, clients are on both nodes."""

from conftest import WAIT_S, until

A, B = 0, 1


def test_an_emit_through_node_a_reaches_a_client_on_node_b(cluster, uid):
    user = uid("bea")
    on_b, events = cluster.connect(B, token=f"token-{user}", record=["news", "raw"])
    cluster.api(A).emit("news", {"n": 1}, b"\x00\x01", to=f"user:{user}")
    assert events.get("news") == ({"n": 1}, b"\x00\x01")
    cluster.api(A).emit("raw", "by sid", sids=on_b.get_sid())
    assert events.get("raw") == ("by sid",)


def test_fetch_sockets_through_node_a_lists_sockets_of_node_b(cluster, uid):
    user = uid("cyd")
    on_b, _ = cluster.connect(B, token=f"token-{user}")
    on_a, _ = cluster.connect(A, token=f"token-{user}", transports=["polling"])
    listed = cluster.api(A).fetch_sockets(to=f"user:{user}")
    by_id = {s["id"]: s for s in listed}
    assert set(by_id) == {on_b.get_sid(), on_a.get_sid()}
    remote = by_id[on_b.get_sid()]
    # What node B's connect hook gave travels with the socket.
    assert remote["user"] == user
    assert remote["data"] == {"transport": "websocket", "protocol": 5}
    assert sorted(remote["rooms"]) == sorted([on_b.get_sid(), f"user:{user}"])
    assert cluster.api(A).rooms()[f"user:{user}"] == 2
    assert cluster.api(B).rooms()[f"user:{user}"] == 2


def test_the_backend_notifies_a_user_on_the_other_node(cluster, uid):
    sender, target = uid("dee"), uid("eve")
    s, _ = cluster.connect(B, token=f"token-{sender}")
    t_b, t_b_events = cluster.connect(B, token=f"token-{target}", record=["notification"])
    t_a, t_a_events = cluster.connect(A, token=f"token-{target}", record=["notification"])
    # The event goes from node B to the backend, which emits through node A's API.
    assert s.call("notify", {"to": target, "text": "across"}, timeout=WAIT_S) == {"sockets": 2}
    for events in (t_b_events, t_a_events):
        assert events.get("notification") == ({"from": sender, "text": "across"},)


def test_join_and_emit_commands_cross_the_cluster(cluster, uid):
    room = uid("hall")
    a, a_events = cluster.connect(A, token=f"token-{uid('fox')}", record=["said"])
    b, b_events = cluster.connect(B, token=f"token-{uid('gil')}", record=["said"])
    assert a.call("join", room, timeout=WAIT_S) is True
    # Through A's API, B's socket joins too.
    cluster.api(A).join(room, sids=b.get_sid())
    # A remote join is published, not awaited (as Node's remoteJoin): B applies it shortly.
    until(lambda: cluster.api(B).rooms().get(room) == 2, "B's socket to join")
    assert b.call("say", (room, "both nodes"), timeout=WAIT_S) is True
    for events in (a_events, b_events):
        assert events.get("said")[0]["text"] == "both nodes"


def test_a_disconnect_through_node_a_calls_node_b_disconnect_hook(cluster, uid):
    user = uid("hob")
    on_b, events = cluster.connect(B, token=f"token-{user}")
    sid = on_b.get_sid()
    cluster.api(A).disconnect(to=f"user:{user}")
    events.get("disconnect")
    got = until(
        lambda: [d for d in cluster.recorded("disconnects") if d["sid"] == sid],
        "the disconnect hook",
    )
    assert got == [{"sid": sid, "nsp": "/", "user": user, "reason": "server namespace disconnect"}]
    assert cluster.api(A).fetch_sockets(to=f"user:{user}") == []
