//! The msgpack parser in process: packets are binary messages (`b<base64>` over polling,
//! binary frames over WebSocket), binary values inline. The official clients are tested
//! end to end (tests/e2e).
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use socketlet::{AckSender, Data, Parser, Socket, SocketIo};

/// msgpack bytes written by hand, as socket.io-msgpack-parser writes them: the map
/// `{"type": kind, "nsp": "/", ...}` with `more` entries after those two, whose bytes are `rest`.
fn packet(kind: u8, more: u8, rest: &[&[u8]]) -> Vec<u8> {
    let head: &[&[u8]] = &[&[0x82 + more], b"\xa4type", &[kind], b"\xa3nsp\xa1/"];
    [head, rest].concat().concat()
}

/// A binary message over polling (`b<base64>`).
fn b64(bytes: &[u8]) -> String {
    format!(
        "b{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The bytes of a binary message over polling.
fn unb64(message: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message.strip_prefix('b').unwrap())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn msgpack_clients_connect_and_get_binary_back_inline() {
    let io = SocketIo::builder().parser(Parser::Msgpack).build();
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on("echo", |data: Data, ack: AckSender| async move {
            let _ = ack.send(data);
        });
    });
    let client = Polling::open(&io).await;
    // {"type": 0, "nsp": "/"}
    client.send(&b64(&packet(0, 0, &[]))).await;
    let bytes = unb64(&client.recv_one().await);
    let connect = socketlet::socketio_proto::msgpack::decode(&bytes, &Default::default()).unwrap();
    assert!(matches!(
        connect.data,
        socketlet::socketio_proto::PacketData::Connect(Some(_))
    ));

    // {"type": 2, "nsp": "/", "data": ["echo", <bin 01 02>], "id": 5}
    let echo = packet(
        2,
        2,
        &[
            b"\xa4data",
            b"\x92\xa4echo",
            b"\xc4\x02\x01\x02",
            b"\xa2id\x05",
        ],
    );
    client.send(&b64(&echo)).await;
    // {"type": 3, "nsp": "/", "data": [<bin 01 02>], "id": 5}: the binary is inline.
    let ack = packet(3, 2, &[b"\xa4data", b"\x91\xc4\x02\x01\x02", b"\xa2id\x05"]);
    assert_eq!(unb64(&client.recv_one().await), ack);

    // Text is not msgpack: the connection ends (the client is told, then it is gone).
    client.send(r#"42["echo"]"#).await;
    assert_eq!(client.recv_one().await, "1");
    client.get().await.assert_engine_error(400, 1);
}
