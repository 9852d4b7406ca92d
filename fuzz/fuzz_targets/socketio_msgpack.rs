//! The msgpack parser of `socketlet-socketio-proto` (`msgpack::decode`, the format of
//! socket.io-msgpack-parser and python-socketio's msgpack serializer) on any bytes, under small
//! limits.
//!
//! Input: the first byte picks the limits, as in the `socketio_decoder` target (`?` for the
//! defaults: 10 binary values, 1,000,000 bytes); the rest is one binary message.
//!
//! Beyond "no panic" (and no recursion without bound):
//! - limits: a packet never holds more binary values than `max_attachments`, nor more bytes of
//!   them than `max_attachment_bytes`, nor data nested deeper than `MAX_DEPTH`;
//! - shape: the namespace starts with `/`;
//! - round trip: when the placeholders are exactly those the decoder wrote (the input may hold
//!   maps that look like placeholders), the packet encodes to msgpack that decodes to the same
//!   packet, and that encoding is stable. (A map with a repeated key may leave a binary value
//!   without a placeholder: the last value wins, as in JavaScript, and the packet model allows
//!   attachments no placeholder names, as the JSON parser does; msgpack cannot carry those.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketlet_socketio_proto::binary::placeholder_num;
use socketlet_socketio_proto::msgpack::{self, MAX_DEPTH};
use socketlet_socketio_proto::{DecoderLimits, Packet, PacketData};
use std::time::Duration;

/// The limits picked by the first byte (see the `socketio_decoder` target).
fn limits(byte: u8) -> DecoderLimits {
    let mut limits = DecoderLimits::default();
    limits.max_attachments = [1, 2, 4, 10][usize::from(byte & 3)];
    limits.max_attachment_bytes = [0, 16, 256, 1_000_000][usize::from((byte >> 2) & 3)];
    limits.attachment_timeout = Duration::from_secs(10);
    limits
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, bytes)) = data.split_first() else {
        return;
    };
    let limits = limits(config);
    let Ok(packet) = msgpack::decode(bytes, &limits) else {
        return;
    };
    let n = packet.attachments.len();
    assert!(n <= limits.max_attachments, "{n} binary values");
    let size: usize = packet.attachments.iter().map(|b| b.len()).sum();
    assert!(
        size <= limits.max_attachment_bytes,
        "{size} bytes of binary"
    );
    assert!(packet.nsp.starts_with('/'), "namespace {:?}", packet.nsp);

    let (depth, placeholders) = walk(&packet);
    assert!(depth <= MAX_DEPTH, "data {depth} deep");

    let exact =
        placeholders.len() == n && placeholders.iter().enumerate().all(|(i, p)| *p == Some(i));
    if exact {
        let encoded = msgpack::encode(&packet);
        let again = msgpack::decode(&encoded, &limits)
            .unwrap_or_else(|e| panic!("{packet:?} encodes to {encoded:?}, which fails: {e:?}"));
        assert_eq!(again, packet, "round trip");
        assert_eq!(msgpack::encode(&again), encoded, "encoding is not stable");
    }
});

/// How deep the packet's data nests (its outer array or map counting 1), and its placeholders
/// in document order: their number when they are exactly as the decoder writes them (two keys),
/// `None` otherwise. Without recursion.
fn walk(packet: &Packet) -> (usize, Vec<Option<usize>>) {
    let (mut todo, base): (Vec<(&Value, usize)>, usize) = match &packet.data {
        PacketData::Connect(Some(v)) | PacketData::ConnectError(v) => (vec![(v, 1)], 0),
        // The data array holds the name (an event's) and the arguments.
        PacketData::Event { args, .. } | PacketData::Ack { args, .. } => {
            (args.iter().rev().map(|a| (a, 2)).collect(), 1)
        }
        PacketData::Connect(None) | PacketData::Disconnect => (vec![], 0),
    };
    let mut deepest = base;
    let mut placeholders = Vec::new();
    while let Some((v, depth)) = todo.pop() {
        if let Some(n) = placeholder_num(v) {
            let exact = v.as_object().is_some_and(|m| m.len() == 2);
            placeholders.push(exact.then_some(n));
            continue;
        }
        match v {
            Value::Array(items) => {
                deepest = deepest.max(depth);
                todo.extend(items.iter().rev().map(|i| (i, depth + 1)));
            }
            Value::Object(m) => {
                deepest = deepest.max(depth);
                todo.extend(m.values().rev().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    (deepest, placeholders)
}
