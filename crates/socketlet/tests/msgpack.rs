//! The msgpack parser in process: packets are binary messages (`b<base64>` over polling,
//! binary frames over WebSocket), binary values inline. The official clients are tested
//! end to end (tests/e2e).
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::*;
use socketlet::{AckSender, Data, Parser, Socket, SocketIo};

/// msgpack bytes written by hand, as socket.io-msgpack-parser writes them.
fn connect_packet() -> Vec<u8> {
    // {"type": 0, "nsp": "/"}
    let mut b = vec![0x82, 0xa4];
    b.extend_from_slice(b"type");
    b.push(0x00);
    b.push(0xa3);
    b.extend_from_slice(b"nsp");
    b.extend_from_slice(&[0xa1, b'/']);
    b
}

/// {"type": 2, "nsp": "/", "data": ["echo", <bin 01 02>], "id": 5}
fn echo_packet() -> Vec<u8> {
    let mut b = vec![0x84, 0xa4];
    b.extend_from_slice(b"type");
    b.push(0x02);
    b.push(0xa3);
    b.extend_from_slice(b"nsp");
    b.extend_from_slice(&[0xa1, b'/', 0xa4]);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&[0x92, 0xa4]);
    b.extend_from_slice(b"echo");
    b.extend_from_slice(&[0xc4, 0x02, 0x01, 0x02, 0xa2]);
    b.extend_from_slice(b"id");
    b.push(0x05);
    b
}

fn b64(bytes: &[u8]) -> String {
    format!(
        "b{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
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
    client.send(&b64(&connect_packet())).await;
    let connect = client.recv_one().await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(connect.strip_prefix('b').unwrap())
        .unwrap();
    let packet = socketlet::socketio_proto::msgpack::decode(&bytes, &Default::default()).unwrap();
    assert!(matches!(
        packet.data,
        socketlet::socketio_proto::PacketData::Connect(Some(_))
    ));

    client.send(&b64(&echo_packet())).await;
    let ack = client.recv_one().await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ack.strip_prefix('b').unwrap())
        .unwrap();
    // {"type": 3, "nsp": "/", "data": [<bin 01 02>], "id": 5}: the binary is inline.
    let mut expected = vec![0x84, 0xa4];
    expected.extend_from_slice(b"type");
    expected.push(0x03);
    expected.push(0xa3);
    expected.extend_from_slice(b"nsp");
    expected.extend_from_slice(&[0xa1, b'/', 0xa4]);
    expected.extend_from_slice(b"data");
    expected.extend_from_slice(&[0x91, 0xc4, 0x02, 0x01, 0x02, 0xa2]);
    expected.extend_from_slice(b"id");
    expected.push(0x05);
    assert_eq!(bytes, expected);

    // Text is not msgpack: the connection ends (the client is told, then it is gone).
    client.send(r#"42["echo"]"#).await;
    assert_eq!(client.recv_one().await, "1");
    client.get().await.assert_engine_error(400, 1);
}
