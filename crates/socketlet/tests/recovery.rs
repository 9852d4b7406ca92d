//! Connection state recovery (Node's `connectionStateRecovery`), in process: offsets, sessions
//! kept and given back, the packets missed meanwhile, and the bounds.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use socketlet::adapter::{Adapter, AdapterError, BoxFuture, BroadcastOptions};
use socketlet::socketio_proto::Packet;
use socketlet::{ConnectError, Data, LocalNamespace, RecoveryConfig, Socket, SocketInfo, SocketIo};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A server with recovery (and `config`'s settings) whose sockets join the room named by their
/// `room` auth field and keep `{"n": <auth n>}` as their data.
fn server(config: RecoveryConfig) -> SocketIo {
    let io = SocketIo::builder()
        .connection_state_recovery(config)
        .build();
    io.of("/").use_middleware(|socket: Socket| async move {
        match socket.auth()["token"].as_str() {
            Some("refuse") => Err(ConnectError::new("refused")),
            _ => Ok(()),
        }
    });
    io.of("/").on_connect(|socket: Socket| async move {
        if socket.recovered() {
            let _ = socket.emit("recovered", true);
            return;
        }
        if let Some(room) = socket.auth()["room"].as_str() {
            socket.join([room.to_owned()]);
        }
        let _ = socket.set_data(json!({"n": socket.auth()["n"]}));
    });
    io
}

/// The CONNECT answer's JSON, the packets before it, and those after it in the same
/// response.
async fn connect_all(io: &SocketIo, auth: Value) -> (Polling, Value, Vec<String>, Vec<String>) {
    let client = Polling::open(io).await;
    client.send(&format!("40{auth}")).await;
    let mut before = Vec::new();
    loop {
        let mut packets = client.recv().await.into_iter();
        while let Some(packet) = packets.next() {
            if let Some(json) = packet.strip_prefix("40") {
                let answer = serde_json::from_str(json).unwrap();
                return (client, answer, before, packets.collect());
            }
            before.push(packet);
        }
    }
}

/// The CONNECT answer's JSON, and the packets before it.
async fn connect(io: &SocketIo, auth: Value) -> (Polling, Value, Vec<String>) {
    let (client, answer, before, _) = connect_all(io, auth).await;
    (client, answer, before)
}

/// The last argument of an EVENT packet to `/`: its offset.
fn offset(packet: &str) -> String {
    let args: Vec<Value> = serde_json::from_str(packet.strip_prefix("42").unwrap()).unwrap();
    args.last().unwrap().as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_comes_back_gets_its_socket_and_what_it_missed_first() {
    let io = server(RecoveryConfig::default());
    let (client, answer, _) = connect(&io, json!({"room": "lobby", "n": 7})).await;
    let sid = answer["sid"].as_str().unwrap().to_owned();
    let pid = answer["pid"].as_str().unwrap().to_owned();
    assert_ne!(sid, pid);

    // Every event without an ack carries an offset: broadcasts and private emits alike.
    io.to("lobby").emit("news", 1).unwrap();
    let socket = io.of("/").get_socket(&sid).unwrap();
    socket.emit("direct", 2).unwrap();
    let packets = client.recv().await;
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert!(packets[0].starts_with(r#"42["news",1,""#), "{packets:?}");
    assert!(packets[1].starts_with(r#"42["direct",2,""#), "{packets:?}");
    let last_seen = offset(&packets[1]);

    client.drop_transport().await;
    // Meanwhile: to its room, to everyone, to it alone, to another room, and one that excludes
    // its room.
    io.to("lobby").emit("missed-room", 3).unwrap();
    io.emit("missed-all", 4).unwrap();
    io.to(sid.clone()).emit("missed-own", 5).unwrap();
    io.to("other").emit("not-for-it", 6).unwrap();
    io.of("/").except("lobby").emit("excluded", 7).unwrap();

    let (_client, answer, before, after) =
        connect_all(&io, json!({"pid": pid, "offset": last_seen})).await;
    assert_eq!(answer["sid"], sid, "the same socket id");
    assert_eq!(answer["pid"], pid);
    let names: Vec<&str> = before
        .iter()
        .map(|p| p.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(names, ["missed-room", "missed-all", "missed-own"]);
    // Rooms and data came back; the connection handler saw `recovered()`.
    let socket = io.of("/").get_socket(&sid).unwrap();
    assert!(socket.recovered());
    assert!(socket.rooms().contains(&"lobby".to_owned()));
    assert_eq!(socket.data(), json!({"n": 7}));
    assert_eq!(after.len(), 1);
    assert!(
        after[0].starts_with(r#"42["recovered",true,""#),
        "{after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn what_cannot_be_recovered_gives_a_fresh_socket() {
    let io = server(RecoveryConfig::default().with_max_packets(3));
    let (client, answer, _) = connect(&io, json!({"room": "lobby"})).await;
    let (sid, pid) = (answer["sid"].clone(), answer["pid"].clone());
    io.emit("one", 1).unwrap();
    let seen = offset(&client.recv_one().await);
    client.drop_transport().await;

    // An unknown pid, an offset that is not a string, a pid that is not: fresh sockets.
    for auth in [
        json!({"pid": "nope", "offset": seen}),
        json!({"pid": pid, "offset": 5}),
        json!({"pid": 5, "offset": seen}),
    ] {
        let (_, answer, before) = connect(&io, auth.clone()).await;
        assert_ne!(answer["sid"], sid, "{auth}");
        assert!(before.is_empty());
    }
    // Past the packet bound, the offset is gone: the session recovers as a fresh socket.
    for n in 0..5 {
        io.emit("flood", n).unwrap();
    }
    let (_, answer, before) = connect(&io, json!({"pid": pid, "offset": seen})).await;
    assert_ne!(answer["sid"], sid);
    assert!(before.is_empty());
}

#[tokio::test(start_paused = true)]
async fn sessions_expire_and_leaving_on_purpose_keeps_none() {
    let io =
        server(RecoveryConfig::default().with_max_disconnection_duration(Duration::from_secs(10)));
    // Expired.
    let (client, answer, _) = connect(&io, json!({})).await;
    io.emit("x", 1).unwrap();
    let seen = offset(&client.recv_one().await);
    client.drop_transport().await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (_, again, _) = connect(&io, json!({"pid": answer["pid"], "offset": seen})).await;
    assert_ne!(again["sid"], answer["sid"]);

    // The client left the namespace itself: nothing kept.
    let (client, answer, _) = connect(&io, json!({})).await;
    io.emit("x", 2).unwrap();
    let seen = offset(&client.recv_one().await);
    client.send("41").await;
    settle().await;
    let (_, again, _) = connect(&io, json!({"pid": answer["pid"], "offset": seen})).await;
    assert_ne!(again["sid"], answer["sid"]);
}

#[tokio::test(start_paused = true)]
async fn middlewares_are_skipped_only_when_configured() {
    for skip in [true, false] {
        let io = server(RecoveryConfig::default().with_skip_middlewares(skip));
        let (client, answer, _) = connect(&io, json!({})).await;
        io.emit("x", 1).unwrap();
        let seen = offset(&client.recv_one().await);
        client.drop_transport().await;
        let c = Polling::open(&io).await;
        c.send(&format!(
            "40{}",
            json!({"pid": answer["pid"], "offset": seen, "token": "refuse"})
        ))
        .await;
        let reply = c.recv().await;
        if skip {
            assert!(
                reply
                    .iter()
                    .any(|p| p.starts_with(&format!(r#"40{{"sid":{}"#, answer["sid"]))),
                "{reply:?}"
            );
        } else {
            assert_eq!(reply, [r#"44{"message":"refused"}"#]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn acks_volatile_emits_and_v4_clients_carry_no_offsets() {
    let io = server(RecoveryConfig::default());
    let (client, answer, _) = connect(&io, json!({})).await;
    let socket = io
        .of("/")
        .get_socket(answer["sid"].as_str().unwrap())
        .unwrap();
    let asking = tokio::spawn(async move { socket.emit_with_ack("q", 1).await });
    let (id, args) = event_with_id(&client.recv_one().await);
    assert_eq!(args, json!(["q", 1]), "no offset on an event with an ack");
    client.send(&format!("43{id}[]")).await;
    asking.await.unwrap().unwrap();
    let parked = client.spawn_get();
    settle().await;
    io.of("/").broadcast().volatile().emit("v", 1).unwrap();
    let res = within("the parked GET", parked).await.unwrap();
    assert_eq!(client.decode(&res), [r#"42["v",1]"#]);

    // A v4 client: no pid in its (empty) CONNECT, and broadcasts come to it without the
    // offset (python-socketio 4.x would call its handlers with one argument too many).
    let (v4, packets) = Polling::handshake(&io, 3).await;
    assert!(packets.iter().all(|p| !p.contains("pid")), "{packets:?}");
    io.emit("plain", 1).unwrap();
    let mut got = v4.recv().await;
    got.retain(|p| p.starts_with("42"));
    assert!(got.contains(&r#"42["plain",1]"#.to_owned()), "{got:?}");
}

/// An adapter that records the calls it gets, then does what the default does (the local part).
struct Recording {
    calls: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl Adapter for Recording {
    fn broadcast(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        self.record(format!("broadcast {:?}", opts.rooms));
        local.broadcast(&packet, &opts);
        Ok(())
    }

    fn fetch_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        self.record(format!("fetch_sockets {:?}", opts.rooms));
        let sockets = local.fetch_sockets(&opts);
        Box::pin(std::future::ready(Ok(sockets)))
    }

    fn server_side_emit(
        &self,
        _local: &LocalNamespace,
        event: &str,
        _data: Data,
    ) -> Result<(), AdapterError> {
        self.record(format!("server_side_emit {event}"));
        Ok(())
    }

    fn room_created(&self, _local: &LocalNamespace, room: &str, private: bool) {
        if !private {
            self.record(format!("room_created {room}"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_adapter_under_the_recovery_store_gets_every_call_the_store_does_not_change() {
    // Recovery is on and the application's adapter keeps no sessions: the server wraps it in
    // its in-memory store, which overrides only what recovery changes (broadcasts, sessions)
    // and leaves the rest to the wrapped adapter.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let io = SocketIo::builder()
        .connection_state_recovery(RecoveryConfig::default())
        .adapter(Arc::new(move |_nsp: &str| {
            Arc::new(Recording { calls: log.clone() }) as Arc<dyn Adapter>
        }))
        .build();
    io.of("/").on_connect(|socket: Socket| async move {
        socket.join(["lobby"]);
    });
    let (client, _, _) = connect(&io, json!({})).await;
    io.to("lobby").emit("news", 1).unwrap();
    // The broadcast went through the store (it carries an offset) and then the adapter.
    let packets = client.recv().await;
    assert_eq!(packets.len(), 1, "{packets:?}");
    assert!(!offset(&packets[0]).is_empty());
    assert_eq!(io.to("lobby").fetch_sockets().await.unwrap().len(), 1);
    io.of("/").server_side_emit("hello", ()).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "room_created lobby",
            r#"broadcast ["lobby"]"#,
            r#"fetch_sockets ["lobby"]"#,
            "server_side_emit hello",
        ]
    );
}
