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
