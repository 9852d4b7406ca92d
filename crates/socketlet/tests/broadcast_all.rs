//! `LocalNamespace::broadcast_all`: several packets handed to each receiver at once.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use socketlet::adapter::BroadcastOptions;
use socketlet::socketio_proto::{Packet, PacketData};
use socketlet::SocketIo;

fn event(n: i64) -> Packet {
    let args = vec![json!(n), json!(format!("offset-{n}"))];
    let data = PacketData::Event {
        name: "n".into(),
        args,
        id: None,
    };
    Packet::new("/", data)
}

/// The events among `packets`.
fn events(packets: Vec<String>) -> Vec<String> {
    packets
        .into_iter()
        .filter(|p| p.starts_with("42"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_receiver_gets_every_packet_in_order_and_old_clients_no_offsets() {
    let io = SocketIo::new();
    let v5 = Polling::open(&io).await;
    v5.connect(None).await;
    // socket.io 2.x: connected to `/` by the handshake (its CONNECT came with the OPEN).
    let (v4, _) = Polling::handshake(&io, 3).await;

    let opts = BroadcastOptions {
        offset: true,
        ..Default::default()
    };
    io.of("/")
        .local()
        .broadcast_all(&[event(1), event(2), event(3)], &opts);
    assert_eq!(
        events(v5.recv().await),
        [
            r#"42["n",1,"offset-1"]"#,
            r#"42["n",2,"offset-2"]"#,
            r#"42["n",3,"offset-3"]"#
        ]
    );
    // Protocol v4 clients cannot recover: the offsets are left out.
    assert_eq!(
        events(v4.recv().await),
        [r#"42["n",1]"#, r#"42["n",2]"#, r#"42["n",3]"#]
    );

    // Without offsets, to a room only.
    let in_room = io.of("/").local().sockets(&BroadcastOptions::default());
    assert_eq!(in_room.len(), 2);
    in_room[0].join(["r"]);
    let to_room = BroadcastOptions {
        rooms: vec!["r".into()],
        ..Default::default()
    };
    io.of("/")
        .local()
        .broadcast_all(&[event(4), event(5)], &to_room);
    let (member, other) = if in_room[0].protocol() == socketlet::ProtocolVersion::V5 {
        (&v5, &v4)
    } else {
        (&v4, &v5)
    };
    let got = events(member.recv().await);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with(r#"42["n",4"#) && got[1].starts_with(r#"42["n",5"#),
        "{got:?}"
    );
    // The other gets nothing but the heartbeat.
    assert!(events(other.recv().await).is_empty());
}
