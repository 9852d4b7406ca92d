//! What the unit tests of the wire formats (`wire_tests.rs`, `streams_tests.rs`) share:
//! socketlet's in-process clients, and the packets and options of the operations that both
//! captures made.

#[path = "../../socketlet/tests/common/mod.rs"]
pub(crate) mod common;

use bytes::Bytes;
use serde_json::{json, Value};
use socketlet::adapter::BroadcastOptions;
use socketlet::socketio_proto::{Packet, PacketData};

/// The fixture `name` of a list of named fixtures.
#[track_caller]
pub(crate) fn fixture<T: Copy>(fixtures: &[(&str, T)], name: &str) -> T {
    fixtures
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1
}

/// What the index of a capture says of its frame `name`.
#[track_caller]
pub(crate) fn indexed<'a>(index: &'a Value, name: &str) -> &'a Value {
    index["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the index"))
}

pub(crate) fn placeholder(n: u64) -> Value {
    json!({ "_placeholder": true, "num": n })
}

pub(crate) fn event(nsp: &str, name: &str, args: Vec<Value>, attachments: Vec<Bytes>) -> Packet {
    Packet {
        nsp: nsp.to_owned(),
        data: PacketData::Event {
            name: name.to_owned(),
            args,
            id: None,
        },
        attachments,
    }
}

pub(crate) fn opts(rooms: &[&str], except: &[&str], volatile: bool) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        except: except.iter().map(|r| (*r).to_owned()).collect(),
        volatile,
        ..Default::default()
    }
}

/// What the crate's readers make of options from Node (always local: they are applied here).
pub(crate) fn local(mut o: BroadcastOptions) -> BroadcastOptions {
    o.local = true;
    o
}

/// The broadcasts that Node's adapter made in both captures (classic and sharded, streams):
/// fixture name, packet and options.
pub(crate) fn node_broadcasts() -> Vec<(&'static str, Packet, BroadcastOptions)> {
    vec![
        (
            "broadcast_all",
            event("/", "hello", vec![json!("world"), json!(1)], vec![]),
            opts(&[], &[], false),
        ),
        (
            "broadcast_room",
            event("/", "news", vec![json!({ "title": "x", "n": 2 })], vec![]),
            opts(&["room1"], &[], false),
        ),
        (
            "broadcast_except_binary",
            event(
                "/",
                "file",
                vec![
                    placeholder(0),
                    json!({ "name": "a.bin", "body": placeholder(1) }),
                ],
                vec![Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4, 5])],
            ),
            opts(&["room1", "room2"], &["room3"], true),
        ),
    ]
}
