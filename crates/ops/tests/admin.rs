//! The Admin UI's server side with socketlet's in-process clients: the login (bcrypt, sessions),
//! what the UI is sent, its commands, read-only and production modes. Real time (the password
//! check runs on a blocking thread, which a paused clock would race), with short stats
//! intervals; every wait is bounded.
#![allow(clippy::unwrap_used)]

#[path = "../../socketlet/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::{json, Value};
use socketlet::{Args, Socket, SocketIo};
use socketlet_ops::{AdminAuth, AdminConfig, AdminMode, AdminUi};
use std::time::Duration;

/// bcryptjs' `hashSync("changeit", 4)` (the cost is low for the tests' sake).
const HASH: &str = "$2a$04$NBNjxNr6W0K4l8S8HcTsHu6ZiY.PP9Vn8quLLG2H5pOC3LmRnA.dS";
const STATS: Duration = Duration::from_millis(200);

/// A server whose `/` has `join` (room) and `echo` events and greets each socket with
/// `welcome`, instrumented with `config`.
fn server(config: AdminConfig) -> (SocketIo, AdminUi) {
    let io = SocketIo::builder()
        .engine(|e| e.with_allowed_hosts(socketlet::AllowedHosts::Any))
        .build();
    let admin = AdminUi::attach(&io, config.with_stats_interval(STATS)).unwrap();
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on(
            "join",
            |socket: Socket, Args(room): Args<String>| async move {
                socket.join([room]);
            },
        );
        socket.on("echo", |socket: Socket, data: socketlet::Data| async move {
            let _ = socket.emit("echo", data);
        });
        let _ = socket.emit("welcome", "hi");
    });
    (io, admin)
}

fn basic() -> AdminConfig {
    AdminConfig::new(AdminAuth::basic("admin", HASH).unwrap())
}

/// A WebSocket client of one Engine.IO connection that speaks Socket.IO v5 text packets.
struct Client {
    ws: Ws,
}

/// What a namespace CONNECT got.
#[derive(Debug)]
enum Connect {
    Ok(String),
    Refused(Value),
}

impl Client {
    async fn open(io: &SocketIo) -> Client {
        let mut ws = ws_connect(io, "EIO=4&transport=websocket").await.unwrap();
        let open = ws_recv_text(&mut ws).await;
        assert!(open.starts_with('0'), "{open}");
        Client { ws }
    }

    /// The next Socket.IO packet (heartbeats answered, binary frames skipped).
    async fn packet(&mut self) -> String {
        loop {
            let text = match ws_next(&mut self.ws).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => t.as_str().to_owned(),
                Some(Ok(_)) => continue,
                other => panic!("the connection ended: {other:?}"),
            };
            if text == "2" {
                ws_send_text(&mut self.ws, "3").await;
                continue;
            }
            return text
                .strip_prefix('4')
                .unwrap_or_else(|| panic!("not a message: {text}"))
                .to_owned();
        }
    }

    /// `nsp` with a comma, as packets carry it (empty for `/`).
    fn prefix(nsp: &str) -> String {
        if nsp == "/" {
            String::new()
        } else {
            format!("{nsp},")
        }
    }

    async fn connect(&mut self, nsp: &str, auth: Value) -> Connect {
        let prefix = Self::prefix(nsp);
        ws_send_text(&mut self.ws, &format!("40{prefix}{auth}")).await;
        loop {
            let p = self.packet().await;
            if let Some(rest) = p.strip_prefix(&format!("0{prefix}")) {
                let v: Value = serde_json::from_str(rest).unwrap();
                return Connect::Ok(v["sid"].as_str().unwrap().to_owned());
            }
            if let Some(rest) = p.strip_prefix(&format!("4{prefix}")) {
                return Connect::Refused(serde_json::from_str(rest).unwrap());
            }
        }
    }

    async fn connect_ok(&mut self, nsp: &str, auth: Value) -> String {
        match self.connect(nsp, auth).await {
            Connect::Ok(sid) => sid,
            other => panic!("refused: {other:?}"),
        }
    }

    async fn emit(&mut self, nsp: &str, args: Value) {
        let prefix = Self::prefix(nsp);
        ws_send_text(&mut self.ws, &format!("42{prefix}{args}")).await;
    }

    /// The arguments of the next event `name` of `nsp` that `accept` takes (others are
    /// skipped).
    async fn event_where(
        &mut self,
        nsp: &str,
        name: &str,
        accept: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let head = format!("2{}", Self::prefix(nsp));
        loop {
            let p = self.packet().await;
            let Some(rest) = p.strip_prefix(&head) else {
                continue;
            };
            let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(rest) else {
                continue;
            };
            if args.first().and_then(Value::as_str) == Some(name) {
                args.remove(0);
                if accept(&args) {
                    return args;
                }
            }
        }
    }

    async fn event(&mut self, nsp: &str, name: &str) -> Vec<Value> {
        self.event_where(nsp, name, |_| true).await
    }

    /// The names of the events of `nsp` that come before the next `name`.
    async fn names_before(&mut self, nsp: &str, name: &str) -> Vec<String> {
        let head = format!("2{}", Self::prefix(nsp));
        let mut seen = Vec::new();
        loop {
            let p = self.packet().await;
            let Some(rest) = p.strip_prefix(&head) else {
                continue;
            };
            let Ok(Value::Array(args)) = serde_json::from_str::<Value>(rest) else {
                continue;
            };
            match args.first().and_then(Value::as_str) {
                Some(n) if n == name => return seen,
                Some(n) => seen.push(n.to_owned()),
                None => {}
            }
        }
    }

    /// Whether the server disconnects `nsp` (a DISCONNECT packet) within `wait`.
    async fn disconnected_within(&mut self, nsp: &str, wait: Duration) -> bool {
        let packet = format!("1{}", Self::prefix(nsp).trim_end_matches(','));
        tokio::time::timeout(wait, async {
            loop {
                if self.packet().await == packet {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}

/// An admin client logged in with the password: its socket id, and what it got before `config`
/// (the session id).
async fn login(io: &SocketIo) -> (Client, String) {
    let mut admin = Client::open(io).await;
    within(
        "the admin login",
        admin.connect_ok(
            "/admin",
            json!({"username": "admin", "password": "changeit"}),
        ),
    )
    .await;
    let session = within("session", admin.event("/admin", "session")).await;
    let session = session[0].as_str().unwrap().to_owned();
    (admin, session)
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_a_session_lets_the_ui_back_in() {
    let (io, _admin) = server(basic());
    for auth in [
        json!({"username": "admin", "password": "wrong"}),
        json!({"username": "someone", "password": "changeit"}),
        json!({}),
        json!({"sessionId": "0123456789abcdef"}),
    ] {
        let mut c = Client::open(&io).await;
        match within("a refused login", c.connect("/admin", auth.clone())).await {
            Connect::Refused(err) => {
                assert_eq!(err, json!({"message": "invalid credentials"}), "{auth}")
            }
            Connect::Ok(_) => panic!("{auth} got in"),
        }
    }
    let (mut admin, session) = login(&io).await;
    assert_eq!(session.len(), 16, "{session}");
    let config = within("config", admin.event("/admin", "config")).await;
    assert_eq!(
        config[0],
        json!({"supportedFeatures": ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"]})
    );

    // The UI comes back (a page reload) with its session id only.
    let mut again = Client::open(&io).await;
    within(
        "the session login",
        again.connect_ok("/admin", json!({"sessionId": session})),
    )
    .await;
    let before = within("config", again.names_before("/admin", "config")).await;
    assert!(
        !before.contains(&"session".to_owned()),
        "no new session: {before:?}"
    );
}

#[tokio::test]
async fn the_ui_sees_sockets_rooms_and_events_and_its_commands_act() {
    let (io, admin_ui) = server(basic());
    // A client already there before the UI.
    let mut early = Client::open(&io).await;
    let early_id = early.connect_ok("/", json!({})).await;

    let (mut admin, _) = login(&io).await;
    within("config", admin.event("/admin", "config")).await;
    let all = within("all_sockets", admin.event("/admin", "all_sockets")).await;
    let all = all[0].as_array().unwrap();
    let listed = all.iter().find(|s| s["id"] == early_id.as_str()).unwrap();
    assert_eq!(listed["nsp"], "/");
    assert_eq!(listed["transport"], "websocket");
    assert_eq!(listed["clientId"].as_str().unwrap().len(), 12);
    assert_eq!(listed["data"], json!({}), "_admin is never shown");
    assert_eq!(listed["rooms"], json!([early_id]));
    assert!(listed["handshake"]["headers"].is_object());
    assert!(listed["handshake"]["issued"].is_u64());
    // Its data carries Node's `_admin` for the other nodes.
    let socket = io.of("/").get_socket(&early_id).unwrap();
    assert_eq!(socket.data()["_admin"]["transport"], "websocket");
    // The admin socket itself is listed too, as in Node.
    assert!(all.iter().any(|s| s["nsp"] == "/admin"));

    // A new client: connected, greeted (event_sent), joins a room, sends an event.
    let mut c = Client::open(&io).await;
    let id = c.connect_ok("/", json!({})).await;
    let connected = within(
        "socket_connected",
        admin.event_where("/admin", "socket_connected", |a| a[0]["id"] == id.as_str()),
    )
    .await;
    assert_eq!(connected[0]["nsp"], "/");
    assert!(
        connected[1].as_str().unwrap().ends_with('Z'),
        "{}",
        connected[1]
    );
    let sent = within(
        "event_sent",
        admin.event_where("/admin", "event_sent", |a| a[1] == id.as_str()),
    )
    .await;
    assert_eq!(
        &sent[..3],
        &[json!("/"), json!(id), json!(["welcome", "hi"])]
    );
    c.emit("/", json!(["join", "lobby"])).await;
    // Heard before its handler runs: before the room is joined.
    let received = within(
        "event_received",
        admin.event_where("/admin", "event_received", |a| a[1] == id.as_str()),
    )
    .await;
    assert_eq!(received[2], json!(["join", "lobby"]));
    let joined = within("room_joined", admin.event("/admin", "room_joined")).await;
    assert_eq!(&joined[..3], &[json!("/"), json!("lobby"), json!(id)]);

    // Commands: the UI's join (filter: the socket's id), emit to a room, and disconnect.
    admin.emit("/admin", json!(["join", "/", "vip", id])).await;
    let joined = within(
        "room_joined vip",
        admin.event_where("/admin", "room_joined", |a| a[1] == "vip"),
    )
    .await;
    assert_eq!(joined[2], json!(id));
    admin
        .emit("/admin", json!(["emit", "/", "vip", "notice", {"n": 1}]))
        .await;
    let notice = within("notice", c.event("/", "notice")).await;
    assert_eq!(notice, [json!({"n": 1})]);
    admin
        .emit("/admin", json!(["_disconnect", "/", false, id]))
        .await;
    assert!(
        c.disconnected_within("/", PATIENCE).await,
        "the client was disconnected"
    );
    let gone = within(
        "socket_disconnected",
        admin.event_where("/admin", "socket_disconnected", |a| a[1] == id.as_str()),
    )
    .await;
    assert_eq!(
        &gone[..3],
        &[json!("/"), json!(id), json!("server namespace disconnect")]
    );
    // Its rooms go with it, its own included.
    let mut left = Vec::new();
    while left.len() < 3 {
        let l = within("room_left", admin.event("/admin", "room_left")).await;
        if l[2] == id.as_str() {
            left.push(l[1].as_str().unwrap().to_owned());
        }
    }
    left.sort();
    let mut expected = vec!["lobby".to_owned(), "vip".to_owned(), id.clone()];
    expected.sort();
    assert_eq!(left, expected);
    // The early client is still there.
    assert!(io.of("/").get_socket(&early_id).is_some());
    assert_eq!(admin_ui.dropped_notes(), 0);
}

#[tokio::test]
async fn server_stats_come_every_interval_with_counts() {
    let (io, admin_ui) = server(basic().with_server_id("node-a"));
    let (mut admin, _) = login(&io).await;
    let mut c = Client::open(&io).await;
    c.connect_ok("/", json!({})).await;
    c.emit("/", json!(["echo", "x".repeat(100)])).await;
    within("echo", c.event("/", "echo")).await;
    // Counts come in the reports after they happened: add them up over a few reports.
    let mut totals = std::collections::HashMap::<String, u64>::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        let stats = within("server_stats", admin.event("/admin", "server_stats")).await;
        last = stats[0].clone();
        for e in last["aggregatedEvents"].as_array().unwrap() {
            assert_eq!(e["timestamp"].as_u64().unwrap() % 1000, 0, "{e}");
            *totals
                .entry(e["type"].as_str().unwrap().to_owned())
                .or_default() += e["count"].as_u64().unwrap();
        }
    }
    assert_eq!(last["serverId"], "node-a");
    assert_eq!(last["pid"], std::process::id());
    assert!(last["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(last["uptime"].as_f64().unwrap() > 0.0);
    assert_eq!(last["clientsCount"], 2);
    assert_eq!(last["pollingClientsCount"], 0);
    let namespaces = last["namespaces"].as_array().unwrap();
    assert!(
        namespaces.contains(&json!({"name": "/", "socketsCount": 1})),
        "{namespaces:?}"
    );
    assert!(namespaces.contains(&json!({"name": "/admin", "socketsCount": 1})));
    // The client's connection (the admin's may have been counted before it could be told).
    assert!(
        totals.get("rawConnection").is_some_and(|n| *n >= 1),
        "{totals:?}"
    );
    assert!(totals["packetsIn"] >= 1, "{totals:?}");
    assert!(totals["bytesIn"] > 100, "{totals:?}");
    assert!(totals["packetsOut"] >= 3, "{totals:?}");
    assert!(totals["bytesOut"] > 100, "{totals:?}");
    assert_eq!(admin_ui.server_stats().unwrap()["serverId"], "node-a");
}

#[tokio::test]
async fn read_only_mode_refuses_commands() {
    let (io, admin_ui) = server(basic().with_readonly(true));
    assert_eq!(
        admin_ui.supported_features(),
        ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    );
    let mut c = Client::open(&io).await;
    let id = c.connect_ok("/", json!({})).await;
    let (mut admin, _) = login(&io).await;
    let config = within("config", admin.event("/admin", "config")).await;
    assert_eq!(
        config[0]["supportedFeatures"],
        json!(["AGGREGATED_EVENTS", "ALL_EVENTS"])
    );
    admin
        .emit("/admin", json!(["_disconnect", "/", false, id]))
        .await;
    admin
        .emit("/admin", json!(["_disconnect", "/", true]))
        .await;
    admin.emit("/admin", json!(["join", "/", "vip", id])).await;
    admin
        .emit("/admin", json!(["emit", "/", null, "notice", 1]))
        .await;
    assert!(!c.disconnected_within("/", Duration::from_millis(500)).await);
    let socket = io.of("/").get_socket(&id).unwrap();
    assert_eq!(socket.rooms(), vec![id.clone()]);
    // Still connected and served.
    c.emit("/", json!(["echo", "still here"])).await;
    assert_eq!(
        within("echo", c.event("/", "echo")).await,
        [json!("still here")]
    );
}

#[tokio::test]
async fn production_mode_sends_counts_only() {
    let (io, admin_ui) = server(basic().with_mode(AdminMode::Production));
    assert_eq!(
        admin_ui.supported_features(),
        [
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
            "AGGREGATED_EVENTS"
        ]
    );
    let (mut admin, _) = login(&io).await;
    let before = within("config", admin.names_before("/admin", "config")).await;
    assert!(before.iter().all(|n| n == "server_stats"), "{before:?}");
    let mut c = Client::open(&io).await;
    let id = c.connect_ok("/", json!({})).await;
    c.emit("/", json!(["echo", 1])).await;
    within("echo", c.event("/", "echo")).await;
    // Reports come, and nothing else does (no all_sockets, no socket_connected, no events).
    for _ in 0..3 {
        let p = within("a report", admin.packet()).await;
        assert!(p.starts_with(r#"2/admin,["server_stats","#), "{p}");
    }
    assert_eq!(
        io.of("/").get_socket(&id).unwrap().data(),
        Value::Null,
        "no _admin data"
    );
}

#[tokio::test]
async fn no_auth_lets_anyone_in_and_upgrades_are_told() {
    let (io, _admin) = server(AdminConfig::new(AdminAuth::none()));
    let mut admin = Client::open(&io).await;
    admin.connect_ok("/admin", json!({})).await;
    let before = within("config", admin.names_before("/admin", "config")).await;
    assert!(
        !before.contains(&"session".to_owned()),
        "no session without a login: {before:?}"
    );

    // A polling client that upgrades to WebSocket.
    let polling = Polling::open(&io).await;
    let (id, _) = polling.connect(None).await;
    let connected = within(
        "socket_connected",
        admin.event_where("/admin", "socket_connected", |a| a[0]["id"] == id.as_str()),
    )
    .await;
    assert_eq!(connected[0]["transport"], "polling");
    let mut ws = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", polling.sid),
    )
    .await
    .unwrap();
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    ws_send_text(&mut ws, "5").await;
    let updated = within("socket_updated", admin.event("/admin", "socket_updated")).await;
    assert_eq!(
        updated[0],
        json!({"id": id, "nsp": "/", "transport": "websocket"})
    );
    let socket = io.of("/").get_socket(&id).unwrap();
    assert_eq!(socket.data()["_admin"]["transport"], "websocket");
}

#[tokio::test]
async fn attaching_needs_a_runtime() {
    let io = SocketIo::new();
    let outside = std::thread::spawn(move || {
        AdminUi::attach(&io, AdminConfig::new(AdminAuth::none())).is_err()
    });
    assert!(outside.join().unwrap());
}

/// Sessions in Redis (Node's `RedisStore`): a session made on one server lets the UI into
/// another, under Node's key.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_session_in_redis_is_good_on_every_node() {
    use socketlet_ops::RedisSessionStore;
    use std::sync::Arc;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = |prefix: &str| {
        Arc::new(
            RedisSessionStore::new(&redis.url)
                .unwrap()
                .with_prefix(prefix),
        )
    };
    let (a, _) = server(basic().with_store(store("socket.io-admin")));
    let (b, _) = server(basic().with_store(store("socket.io-admin")));
    let (_, session) = login(&a).await;
    let mut again = Client::open(&b).await;
    within(
        "the session login on the other node",
        again.connect_ok("/admin", json!({"sessionId": session})),
    )
    .await;
    let mut c = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("socket.io-admin#{session}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "{key}: {ttl}");
    // Another prefix is another store.
    let (other, _) = server(basic().with_store(store("elsewhere")));
    let mut refused = Client::open(&other).await;
    assert!(matches!(
        refused
            .connect("/admin", json!({"sessionId": session}))
            .await,
        Connect::Refused(_)
    ));
}

/// A redis-server of the test's own on a free port, killed when dropped; `None` (the test
/// skips) when there is none and SOCKETLET_REQUIRE_REDIS is not set.
#[cfg(feature = "redis")]
struct RedisServer {
    child: std::process::Child,
    url: String,
}

#[cfg(feature = "redis")]
impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("SOCKETLET_REQUIRE_REDIS").is_none() => {
                eprintln!("SKIPPED: cannot run redis-server ({e})");
                return None;
            }
            Err(e) => panic!("cannot run redis-server ({e}), and SOCKETLET_REQUIRE_REDIS is set"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(RedisServer {
                    child,
                    url: format!("redis://127.0.0.1:{port}"),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
