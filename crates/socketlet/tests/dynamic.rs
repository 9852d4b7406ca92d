//! Dynamic namespaces: the parent that `SocketIo::dynamic` returns reaches every child, as
//! Node's parent namespace does, and has no adapter (no cluster channel) of its own.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use socketlet::adapter::{Adapter, AdapterFactory};
use socketlet::{MemoryAdapter, Socket, SocketIo};
use std::sync::{Arc, Mutex};

/// A v5 polling client connected to namespace `nsp` (with `query` on its CONNECT, if any); its
/// socket id. The connection handler's `hello` comes with the CONNECT.
async fn join(io: &SocketIo, nsp: &str, query: &str) -> (Polling, String) {
    let client = Polling::open(io).await;
    client.send(&format!("40{nsp}{query},")).await;
    let packets = client.recv().await;
    let connect = packets
        .iter()
        .find_map(|p| p.strip_prefix(&format!("40{nsp},")))
        .unwrap_or_else(|| panic!("no CONNECT to {nsp} in {packets:?}"));
    let hello = format!(r#"42{nsp},["hello","{nsp}"]"#);
    assert!(packets.contains(&hello), "{packets:?}");
    let sid = serde_json::from_str::<serde_json::Value>(connect).expect("CONNECT JSON")["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    (client, sid)
}

#[tokio::test(start_paused = true)]
async fn the_parent_reaches_every_child_and_only_children() {
    let made = Arc::new(Mutex::new(Vec::new()));
    let log = made.clone();
    let factory: AdapterFactory = Arc::new(move |nsp: &str| {
        log.lock().unwrap().push(nsp.to_owned());
        Arc::new(MemoryAdapter) as Arc<dyn Adapter>
    });
    let io = SocketIo::builder().adapter(factory).build();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    parent.on_connect(|socket: Socket| async move {
        if let Some(room) = socket.query("room") {
            socket.join([room]);
        }
        let _ = socket.emit("hello", socket.ns().name());
    });

    let (a, a_id) = join(&io, "/team-a", "").await;
    let (b, _) = join(&io, "/team-b", "").await;
    let (ops, _) = join(&io, "/team-b", "?room=ops").await;
    let root = Polling::open(&io).await;
    root.connect(None).await;

    // Every child gets the parent's emit, each under its own name; `/` does not.
    parent.emit("news", json!(1)).expect("emit");
    assert_eq!(a.recv_one().await, r#"42/team-a,["news",1]"#);
    assert_eq!(b.recv_one().await, r#"42/team-b,["news",1]"#);
    assert_eq!(ops.recv_one().await, r#"42/team-b,["news",1]"#);

    // Rooms and operators apply in each child.
    parent
        .to("ops")
        .emit("page", json!("ops only"))
        .expect("emit");
    assert_eq!(ops.recv_one().await, r#"42/team-b,["page","ops only"]"#);
    let mut sockets = parent.fetch_sockets().await.expect("fetch");
    sockets.sort_by(|x, y| x.nsp.cmp(&y.nsp));
    let namespaces: Vec<&str> = sockets.iter().map(|s| s.nsp.as_str()).collect();
    assert_eq!(namespaces, ["/team-a", "/team-b", "/team-b"]);
    assert!(sockets.iter().any(|s| s.id == a_id));

    parent
        .except("nobody")
        .sockets_join(["all"])
        .await
        .expect("join");
    assert_eq!(io.of("/team-a").local().rooms(), vec!["all".to_owned()]);

    parent
        .broadcast()
        .disconnect_sockets()
        .await
        .expect("disconnect");
    assert_eq!(a.recv_one().await, "41/team-a,");
    assert_eq!(b.recv_one().await, "41/team-b,");
    assert_eq!(ops.recv_one().await, "41/team-b,");
    assert_eq!(io.of("/team-a").local().socket_count(), 0);
    assert_eq!(io.of("/team-b").local().socket_count(), 0);

    // `/` heard nothing of it (its first packet is the heartbeat).
    assert_eq!(root.recv_one().await, "2");

    // Adapters were made for `/` and the two children, none for the parent.
    let mut made = made.lock().unwrap().clone();
    made.sort();
    assert_eq!(made, ["/", "/team-a", "/team-b"]);
}

#[tokio::test(start_paused = true)]
async fn clients_cannot_connect_to_the_parent() {
    let io = SocketIo::new();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    let client = Polling::open(&io).await;
    client.send(&format!("40{},", parent.name())).await;
    assert_eq!(
        client.recv_one().await,
        format!(r#"44{},{{"message":"Invalid namespace"}}"#, parent.name())
    );
}

#[tokio::test(start_paused = true)]
async fn a_parent_without_children_reaches_nobody() {
    let io = SocketIo::new();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    parent
        .emit("news", json!(1))
        .expect("nothing to do is not an error");
    assert!(parent.fetch_sockets().await.expect("fetch").is_empty());
    let acks = parent
        .broadcast()
        .timeout(std::time::Duration::from_secs(1))
        .emit_with_ack("q", json!(1))
        .await
        .expect("emit");
    assert!(acks.is_complete() && acks.responses.is_empty());
}

/// An adapter factory that counts the adapters made and let go (`namespace_removed`) per name.
#[derive(Default)]
struct Counts {
    made: Mutex<Vec<String>>,
    removed: Mutex<Vec<String>>,
}

struct Counted {
    nsp: String,
    counts: Arc<Counts>,
}

impl Adapter for Counted {
    fn namespace_removed(&self, _local: &socketlet::adapter::LocalNamespace) {
        self.counts.removed.lock().unwrap().push(self.nsp.clone());
    }
}

fn counted(counts: &Arc<Counts>) -> AdapterFactory {
    let counts = counts.clone();
    Arc::new(move |nsp: &str| {
        counts.made.lock().unwrap().push(nsp.to_owned());
        Arc::new(Counted {
            nsp: nsp.to_owned(),
            counts: counts.clone(),
        }) as Arc<dyn Adapter>
    })
}

#[tokio::test(start_paused = true)]
async fn refused_connects_leave_no_child_namespace_behind() {
    let counts = Arc::new(Counts::default());
    let io = SocketIo::builder().adapter(counted(&counts)).build();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    parent.use_middleware(|socket: Socket| async move {
        match socket.ns().name() {
            "/team-ok" => Ok(()),
            _ => Err(socketlet::ConnectError::new("not you")),
        }
    });
    parent.on_connect(|socket: Socket| async move {
        let _ = socket.emit("hello", socket.ns().name());
    });

    // Made-up names, refused: each made a child (its middlewares run on it), gone once the
    // CONNECT is over, its adapter let go.
    let client = Polling::open(&io).await;
    for i in 0..50 {
        client.send(&format!("40/team-{i},")).await;
        assert_eq!(
            client.recv_one().await,
            format!(r#"44/team-{i},{{"message":"not you"}}"#)
        );
    }
    assert_eq!(io.namespace_names(), vec!["/".to_owned()]);
    assert_eq!(counts.made.lock().unwrap().len(), 51);
    assert_eq!(counts.removed.lock().unwrap().len(), 50);
    assert!(parent.fetch_sockets().await.unwrap().is_empty());

    // A child a socket joined stays when the socket leaves (as in Node), and the parent still
    // reaches the next one.
    let (ok, _) = join(&io, "/team-ok", "").await;
    ok.send("41/team-ok,").await;
    settle_a_moment().await;
    assert!(io.namespace("/team-ok").is_some());
    let (again, _) = join(&io, "/team-ok", "").await;
    parent.emit("news", json!(2)).expect("emit");
    assert_eq!(again.recv_one().await, r#"42/team-ok,["news",2]"#);
    assert_eq!(counts.removed.lock().unwrap().len(), 50);
}

#[tokio::test(start_paused = true)]
async fn child_namespaces_are_bounded() {
    let io = SocketIo::builder().max_child_namespaces(2).build();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    parent.on_connect(|socket: Socket| async move {
        let _ = socket.emit("hello", socket.ns().name());
    });
    let _a = join(&io, "/team-a", "").await;
    let _b = join(&io, "/team-b", "").await;
    let client = Polling::open(&io).await;
    client.send("40/team-c,").await;
    assert_eq!(
        client.recv_one().await,
        r#"44/team-c,{"message":"Invalid namespace"}"#
    );
    // Existing children still take clients.
    let _a2 = join(&io, "/team-a", "").await;
    let mut names = io.namespace_names();
    names.sort();
    assert_eq!(names, ["/", "/team-a", "/team-b"]);
}

#[tokio::test(start_paused = true)]
async fn connects_under_way_are_bounded_per_connection() {
    // Middlewares that never finish: every CONNECT stays under way.
    let io = SocketIo::new();
    let parent = io.dynamic(|name| name.starts_with("/slow-"));
    let runs = Arc::new(Mutex::new(0usize));
    let count = runs.clone();
    parent.use_middleware(move |_socket: Socket| {
        *count.lock().unwrap() += 1;
        std::future::pending::<Result<(), socketlet::ConnectError>>()
    });
    let client = Polling::open(&io).await;
    let sid = socketlet_engine::Sid::parse(&client.sid).expect("sid");
    let session = io.engine().socket(sid).expect("session");
    // A second CONNECT to a namespace with one under way is ignored.
    client.send("40/slow-0,").await;
    client.send("40/slow-0,").await;
    for i in 1..32 {
        client.send(&format!("40/slow-{i},")).await;
    }
    settle_a_moment().await;
    assert_eq!(*runs.lock().unwrap(), 32);
    assert!(!session.is_closed());
    // One more: the connection is closed (a protocol error).
    client.send("40/slow-32,").await;
    settle_a_moment().await;
    assert!(session.is_closed(), "closed past 32 CONNECTs under way");
    assert_eq!(*runs.lock().unwrap(), 32);

    // Another client is not affected.
    let other = Polling::open(&io).await;
    other.connect(None).await;
}

/// Lets spawned tasks run (time is paused, so nothing times out meanwhile).
async fn settle_a_moment() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn predicates_and_adapter_factories_run_with_no_server_lock_held() {
    // Both look at the server while they run: with a lock of the server held, they would
    // deadlock.
    let server = Arc::new(std::sync::OnceLock::<socketlet::WeakSocketIo>::new());
    let seen = server.clone();
    let factory: AdapterFactory = Arc::new(move |nsp: &str| {
        if let Some(io) = seen.get().and_then(|w| w.upgrade()) {
            let _ = io.namespace_names();
            if nsp == "/team-a" {
                let _ = io.of("/made-by-the-factory");
            }
        }
        Arc::new(MemoryAdapter) as Arc<dyn Adapter>
    });
    let io = SocketIo::builder().adapter(factory).build();
    let _ = server.set(io.downgrade());
    let look = io.downgrade();
    let parent = io.dynamic(move |name| {
        look.upgrade()
            .is_some_and(|io| !io.namespace_names().is_empty() && name.starts_with("/team-"))
    });
    parent.on_connect(|socket: Socket| async move {
        let _ = socket.emit("hello", socket.ns().name());
    });
    let _a = join(&io, "/team-a", "").await;
    let _ = io.of("/static");
    assert!(io.namespace("/made-by-the-factory").is_some());
}

#[tokio::test(start_paused = true)]
async fn rooms_joined_by_middlewares_go_when_a_later_one_refuses() {
    let io = SocketIo::new();
    let ns = io.of("/");
    ns.use_middleware(|socket: Socket| async move {
        socket.join(["early", "team"]);
        Ok(())
    });
    ns.use_middleware(|socket: Socket| async move {
        match socket.auth().get("token").and_then(|t| t.as_str()) {
            Some("ok") => Ok(()),
            _ => Err(socketlet::ConnectError::new("no")),
        }
    });
    let refused = Polling::open(&io).await;
    refused.send("40").await;
    assert_eq!(refused.recv_one().await, r#"44{"message":"no"}"#);
    assert!(ns.local().rooms().is_empty(), "{:?}", ns.local().rooms());

    // An accepted socket is in its middlewares' rooms by the time it is connected.
    let accepted = Polling::open(&io).await;
    accepted.send(r#"40{"token":"ok"}"#).await;
    assert!(accepted.recv_one().await.starts_with("40{"));
    let mut rooms = ns.local().rooms();
    rooms.sort();
    assert_eq!(rooms, ["early", "team"]);
}

/// One connection in many namespaces, joined in no order: each packet reaches the socket of
/// its own namespace, and leaving one leaves the others as they were.
#[tokio::test(start_paused = true)]
async fn one_connection_in_many_namespaces_reaches_each() {
    let io = SocketIo::new();
    let parent = io.dynamic(|name| name.starts_with("/team-"));
    parent.on_connect(|socket: Socket| async move {
        socket.on(
            "who",
            |socket: Socket, ack: socketlet::AckSender| async move {
                let _ = ack.send(socket.ns().name());
            },
        );
    });
    let client = Polling::open(&io).await;
    let names: Vec<String> = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]
        .iter()
        .map(|i| format!("/team-{i}"))
        .collect();
    for name in &names {
        client.send(&format!("40{name},")).await;
    }
    let mut answered = 0;
    while answered < names.len() {
        answered += client
            .recv()
            .await
            .iter()
            .filter(|p| p.starts_with("40/team-"))
            .count();
    }
    let ask_all = |names: Vec<String>| {
        let client = &client;
        async move {
            for (i, name) in names.iter().enumerate() {
                client.send(&format!(r#"42{name},{i}["who"]"#)).await;
            }
            let mut acks = Vec::new();
            while acks.len() < names.len() {
                acks.extend(client.recv().await);
            }
            acks.sort();
            let mut expected: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, name)| format!(r#"43{name},{i}["{name}"]"#))
                .collect();
            expected.sort();
            assert_eq!(acks, expected);
        }
    };
    ask_all(names.clone()).await;
    client.send("41/team-9,").await;
    client.send("41/team-0,").await;
    settle_a_moment().await;
    let left: Vec<String> = names
        .into_iter()
        .filter(|n| n != "/team-9" && n != "/team-0")
        .collect();
    ask_all(left).await;
}
