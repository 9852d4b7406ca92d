//! The handler API: extractors and typed arguments, what a handler that does not fit answers,
//! several handlers of one event, async connection handlers, typed emits, and observers.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use socketlet::{
    AckSender, Args, Data, DisconnectReason, EventName, Observer, Socket, SocketIo, TryArgs,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A v5 polling client connected to `/`.
async fn connected(io: &SocketIo) -> Polling {
    let client = Polling::open(io).await;
    client.connect(None).await;
    client
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Move {
    piece: String,
    to: [u8; 2],
}

#[tokio::test(start_paused = true)]
async fn handlers_take_typed_arguments_in_any_order() {
    let io = SocketIo::new();
    io.of("/").on_connect(|socket: Socket| async move {
        // One argument as a struct; the ack first, the socket last.
        socket.on(
            "move",
            |ack: AckSender, Args(m): Args<Move>, socket: Socket| async move {
                let _ = socket.emit("moved", &m);
                let _ = ack.send(format!("{} to {:?}", m.piece, m.to));
            },
        );
        // Several arguments as a tuple.
        socket.on(
            "sum",
            |Args((a, b)): Args<(i64, i64)>, ack: AckSender| async move {
                let _ = ack.send(a + b);
            },
        );
        // One handler for two events, told apart by name; several arguments out.
        for name in ["ping", "pong"] {
            socket.on(
                name,
                |EventName(name): EventName, ack: AckSender| async move {
                    let _ = ack.send(socketlet::args![name, 1, [true]].unwrap());
                },
            );
        }
    });
    let client = connected(&io).await;

    client
        .send(r#"421["move",{"piece":"knight","to":[2,5]}]"#)
        .await;
    assert_eq!(
        client.recv().await,
        [
            r#"42["moved",{"piece":"knight","to":[2,5]}]"#,
            r#"431["knight to [2, 5]"]"#
        ]
    );
    client.send(r#"422["sum",40,2]"#).await;
    assert_eq!(client.recv_one().await, "432[42]");
    client.send(r#"423["pong"]"#).await;
    assert_eq!(client.recv_one().await, r#"433["pong",1,[true]]"#);
}

#[tokio::test(start_paused = true)]
async fn arguments_that_do_not_fit_are_answered_with_an_error() {
    let io = SocketIo::new();
    let called = Arc::new(Mutex::new(0));
    let count = called.clone();
    io.of("/").on_connect(move |socket: Socket| {
        let count = count.clone();
        socket.on("move", move |Args(_m): Args<Move>| {
            *count.lock().unwrap() += 1;
            async {}
        });
        // TryArgs: the handler answers bad input itself.
        socket.on(
            "careful",
            |TryArgs(m): TryArgs<Move>, ack: AckSender| async move {
                let _ = ack.send(match m {
                    Ok(m) => json!({"ok": m.piece}),
                    Err(e) => json!({"refused": e.message().contains("missing field")}),
                });
            },
        );
        async {}
    });
    let client = connected(&io).await;

    client.send(r#"427["move",{"piece":"rook"}]"#).await;
    let answer = client.recv_one().await;
    let (id, args) = answer.split_at(4);
    assert_eq!(id, "437[");
    assert!(
        args.starts_with(r#"{"error":{"message":"invalid arguments: missing field `to`"#),
        "{answer}"
    );
    // Without an ack, nothing is answered, and the handler still does not run.
    client.send(r#"42["move",5]"#).await;
    client.send(r#"428["careful",{"piece":"rook"}]"#).await;
    assert_eq!(client.recv_one().await, r#"438[{"refused":true}]"#);
    assert_eq!(*called.lock().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn several_handlers_of_an_event_run_in_order_and_the_first_ack_wins() {
    let io = SocketIo::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = order.clone();
    io.of("/").on_connect(move |socket: Socket| {
        for n in 1..=3 {
            let log = log.clone();
            socket.on("go", move |ack: AckSender| {
                log.lock().unwrap().push(n);
                async move {
                    let _ = ack.send(n);
                }
            });
        }
        async {}
    });
    let client = connected(&io).await;
    client.send(r#"425["go"]"#).await;
    assert_eq!(client.recv_one().await, "435[1]");
    assert_eq!(*order.lock().unwrap(), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn connection_handlers_add_up_and_may_await() {
    let io = SocketIo::new();
    // The first handler registers its listener, then awaits (a database, say).
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on("early", |ack: AckSender| async move {
            let _ = ack.send("heard");
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = socket.emit("loaded", true);
    });
    // A second one: both run.
    io.of("/").on_connect(|socket: Socket| async move {
        let _ = socket.emit("second", true);
    });
    let client = Polling::open(&io).await;
    client.send("40").await;
    // The CONNECT and the second handler's emit come at once; the client speaks at once too,
    // before the first handler is done: its listener, registered before its first await,
    // hears it.
    let packets = client.recv().await;
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert_eq!(packets[1], r#"42["second",true]"#);
    client.send(r#"421["early"]"#).await;
    assert_eq!(client.recv_one().await, r#"431["heard"]"#);
    assert_eq!(client.recv_one().await, r#"42["loaded",true]"#);
}

#[tokio::test(start_paused = true)]
async fn emits_take_any_serializable_value_and_report_what_does_not_serialize() {
    let io = SocketIo::new();
    let client = connected(&io).await;
    let socket = io.of("/").local().sockets(&Default::default()).remove(0);
    socket
        .emit(
            "moved",
            &Move {
                piece: "pawn".into(),
                to: [0, 1],
            },
        )
        .unwrap();
    socket.emit("count", 3).unwrap();
    socket.emit("none", Data::new()).unwrap();
    let mut not_json = std::collections::HashMap::new();
    not_json.insert((1, 2), "tuple keys are not JSON");
    assert!(matches!(
        socket.emit("bad", &not_json),
        Err(socketlet::EmitError::Serialize(_))
    ));
    assert_eq!(
        client.recv().await,
        [
            r#"42["moved",{"piece":"pawn","to":[0,1]}]"#,
            r#"42["count",3]"#,
            r#"42["none"]"#
        ]
    );
}

/// Writes down what it hears.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl Observer for Recorder {
    fn connection_opened(&self, _c: &Arc<socketlet::engine::Connection>) {
        self.push("open".into());
    }
    fn connection_closed(
        &self,
        _c: &Arc<socketlet::engine::Connection>,
        reason: socketlet::engine::CloseReason,
    ) {
        self.push(format!("close {}", reason.as_str()));
    }
    fn socket_connected(&self, socket: &Socket) {
        self.push(format!("connect {}", socket.ns().name()));
    }
    fn socket_disconnected(&self, _socket: &Socket, reason: DisconnectReason) {
        self.push(format!("disconnect {reason}"));
    }
    fn room_joined(&self, _socket: &Socket, room: &str) {
        self.push(format!("join {room}"));
    }
    fn room_left(&self, _socket: &Socket, room: &str) {
        self.push(format!("leave {room}"));
    }
    fn event_received(&self, _socket: &Socket, event: &str, _data: &Data, bytes: usize) {
        self.push(format!("in {event} {bytes}"));
    }
    fn packet_sent(&self, _socket: &Socket, _packet: &socketlet::socketio_proto::Packet, n: usize) {
        self.push(format!("out {n}"));
    }
    fn broadcast_sent(
        &self,
        nsp: &str,
        _packet: &socketlet::socketio_proto::Packet,
        receivers: usize,
        bytes: usize,
    ) {
        self.push(format!("broadcast {nsp} {receivers}x{bytes}"));
    }
}

#[tokio::test(start_paused = true)]
async fn observers_hear_connections_sockets_rooms_and_packets() {
    let io = SocketIo::new();
    let recorder = Arc::new(Recorder::default());
    io.observe(recorder.clone());
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on(
            "join",
            |socket: Socket, Args(room): Args<String>| async move {
                socket.join([room.clone()]);
                let _ = socket.to(room).emit("hi", 1);
                socket.leave_all();
            },
        );
    });
    let client = connected(&io).await;
    client.send(r#"42["join","lobby"]"#).await;
    let _ = io.emit("all", 1);
    client.recv().await;
    client.send("1").await;
    settle().await;
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(
        heard,
        [
            "open",
            "connect /",
            // 40{"sid":"<20 characters>"}
            "out 31",
            r#"in join 17"#,
            "join lobby",
            // Nobody else in the room: a broadcast to no one is not sent.
            "leave lobby",
            "broadcast / 1x10",
            "disconnect transport close",
            "close transport close",
        ]
    );
}
