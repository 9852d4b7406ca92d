//! The Socket.IO decoder of one connection (`socketlet_socketio_proto::Decoder`) fed a sequence
//! of Engine.IO messages, text and binary, under small limits and a clock that moves.
//!
//! Input: the first byte picks the limits (see [`limits`]); the rest is a list of messages
//! separated by `\n`. Each message starts with a byte that says what it is: `t` a text message
//! and `b` a binary one, both at the same instant as the previous message; any other byte
//! advances the clock by 4 ms times its value, then is text when even and binary when odd. The
//! rest of the message is its content (text is made valid UTF-8 first, as the engine only hands
//! over valid text). A first byte of `?` gives the default limits (10 attachments,
//! 1,000,000 bytes, 10 s).
//!
//! The decoder is the same for protocol v4 (socket.io-client 1.x/2.x) and v5 (3.x/4.x): the
//! wire codec does not differ; the seeds hold both generations' packets.
//!
//! Beyond "no panic", the decoder is checked against a model of what it was given:
//! - limits: a packet never has more attachments than `max_attachments`, nor more bytes of them
//!   than `max_attachment_bytes`, and its last attachment never arrives after the text part's
//!   instant plus `attachment_timeout`; the decoder waits (has a deadline) exactly while a
//!   packet misses attachments, and that deadline is the text's instant plus the timeout;
//! - states: binary while idle is `UnexpectedBinary`; text while waiting is `UnexpectedText`,
//!   or `AttachmentTimeout` once the deadline passed; any error leaves the decoder idle;
//! - content: a packet's attachments are exactly the binary messages that followed its text,
//!   in order; every placeholder names one of them; the namespace starts with `/` and holds no
//!   `,`; a packet with attachments is a BINARY_EVENT or BINARY_ACK, one without is not;
//! - round trip: a decoded packet re-encodes to text (and its attachments) that a fresh decoder
//!   decodes to an equal packet (floats within an ulp or so: serde_json's default float parsing
//!   is not exact to the last bit), and whose encoding is then stable.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketlet_socketio_proto::binary::max_placeholder;
use socketlet_socketio_proto::{
    Decoder, DecoderLimits, Packet, PacketData, PacketKind, ParseError,
};
use std::time::{Duration, Instant};

/// The limits picked by the first byte: two bits each for the attachment count, their bytes and
/// the timeout.
fn limits(byte: u8) -> DecoderLimits {
    let mut limits = DecoderLimits::default();
    limits.max_attachments = [1, 2, 4, 10][usize::from(byte & 3)];
    limits.max_attachment_bytes = [0, 16, 256, 1_000_000][usize::from((byte >> 2) & 3)];
    limits.attachment_timeout =
        [0, 10, 1_000, 10_000].map(Duration::from_millis)[usize::from((byte >> 4) & 3)];
    limits
}

/// What the model knows of a packet waiting for attachments.
struct Waiting {
    /// When its text part arrived.
    since: Instant,
    /// The attachments given so far.
    attachments: Vec<Bytes>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let limits = limits(config);
    let start = Instant::now();
    let mut now = start;
    let mut decoder = Decoder::new(limits.clone());
    let mut waiting: Option<Waiting> = None;

    for message in rest.split(|&b| b == b'\n') {
        let Some((&head, content)) = message.split_first() else {
            continue;
        };
        let binary = match head {
            b't' => false,
            b'b' => true,
            other => {
                now += Duration::from_millis(4 * u64::from(other));
                other % 2 == 1
            }
        };
        let result = if binary {
            let data = Bytes::copy_from_slice(content);
            let result = decoder.decode_binary(data.clone(), now);
            match waiting.as_mut() {
                None => assert_eq!(result, Err(ParseError::UnexpectedBinary)),
                Some(w) => {
                    let late = now > w.since + limits.attachment_timeout;
                    let total: usize =
                        w.attachments.iter().map(Bytes::len).sum::<usize>() + data.len();
                    if late {
                        assert_eq!(result, Err(ParseError::AttachmentTimeout));
                    } else if total > limits.max_attachment_bytes {
                        assert_eq!(result, Err(ParseError::AttachmentsTooLarge));
                    } else {
                        assert!(result.is_ok(), "attachment refused: {result:?}");
                        w.attachments.push(data);
                    }
                }
            }
            result
        } else {
            let text = String::from_utf8_lossy(content);
            let result = decoder.decode_text(&text, now);
            if let Some(w) = &waiting {
                let late = now > w.since + limits.attachment_timeout;
                let expected = if late {
                    ParseError::AttachmentTimeout
                } else {
                    ParseError::UnexpectedText
                };
                assert_eq!(result, Err(expected));
            }
            if matches!(result, Ok(None)) {
                waiting = Some(Waiting {
                    since: now,
                    attachments: Vec::new(),
                });
            }
            result
        };

        match result {
            Ok(None) => {
                let w = waiting
                    .as_ref()
                    .expect("the decoder waits, the model does not");
                assert!(w.attachments.len() < limits.max_attachments);
                assert_eq!(
                    decoder.deadline(),
                    Some(w.since + limits.attachment_timeout),
                    "deadline"
                );
            }
            Ok(Some(packet)) => {
                let w = waiting.take();
                let attachments = w.as_ref().map_or(&[][..], |w| &w.attachments[..]);
                assert_eq!(packet.attachments, attachments, "attachments");
                if let Some(w) = &w {
                    assert!(
                        now <= w.since + limits.attachment_timeout,
                        "late attachment"
                    );
                }
                check_packet(&packet, &limits);
                check_round_trip(&packet, &limits, now);
                assert_eq!(decoder.deadline(), None);
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                waiting = None;
                assert_eq!(decoder.deadline(), None, "not idle after {e:?}");
            }
        }
    }
});

fn check_packet(packet: &Packet, limits: &DecoderLimits) {
    let n = packet.attachments.len();
    assert!(n <= limits.max_attachments, "{n} attachments");
    let bytes: usize = packet.attachments.iter().map(Bytes::len).sum();
    assert!(
        bytes <= limits.max_attachment_bytes,
        "{bytes} bytes of attachments"
    );
    assert!(packet.nsp.starts_with('/'), "namespace {:?}", packet.nsp);
    assert!(!packet.nsp.contains(','), "namespace {:?}", packet.nsp);
    let binary_kind = matches!(
        packet.kind(),
        PacketKind::BinaryEvent | PacketKind::BinaryAck
    );
    assert_eq!(
        binary_kind,
        n > 0,
        "{:?} with {n} attachments",
        packet.kind()
    );
    let args = match &packet.data {
        PacketData::Event { args, .. } | PacketData::Ack { args, .. } => &args[..],
        _ => &[],
    };
    if let Some(max) = max_placeholder(args) {
        assert!(max < n, "placeholder {max} with {n} attachments");
    }
}

/// The packet re-encoded goes through a fresh decoder (with the same limits, at the same
/// instant) to an equal packet.
fn check_round_trip(packet: &Packet, limits: &DecoderLimits, now: Instant) {
    let text = packet.encode();
    let again = decode_whole(&text, &packet.attachments, limits, now)
        .unwrap_or_else(|e| panic!("{text:?} does not decode: {e:?}"));
    assert!(
        same_packet(packet, &again),
        "{packet:?} came back as {again:?}"
    );
    let text_again = again.encode();
    let third = decode_whole(&text_again, &again.attachments, limits, now)
        .unwrap_or_else(|e| panic!("{text_again:?} does not decode: {e:?}"));
    assert!(
        same_packet(&again, &third),
        "{again:?} came back as {third:?}"
    );
    if !has_float(packet) {
        assert_eq!(text_again, text, "encoding is not stable");
    }
}

/// Whether the packet's JSON holds a float (whose re-encoding may move by an ulp).
fn has_float(packet: &Packet) -> bool {
    let mut todo: Vec<&Value> = match &packet.data {
        PacketData::Connect(Some(v)) | PacketData::ConnectError(v) => vec![v],
        PacketData::Event { args, .. } | PacketData::Ack { args, .. } => args.iter().collect(),
        PacketData::Connect(None) | PacketData::Disconnect => vec![],
    };
    while let Some(v) = todo.pop() {
        match v {
            Value::Number(n) if n.is_f64() => return true,
            Value::Array(items) => todo.extend(items),
            Value::Object(map) => todo.extend(map.values()),
            _ => {}
        }
    }
    false
}

fn decode_whole(
    text: &str,
    attachments: &[Bytes],
    limits: &DecoderLimits,
    now: Instant,
) -> Result<Packet, ParseError> {
    let mut decoder = Decoder::new(limits.clone());
    let mut result = decoder.decode_text(text, now)?;
    for a in attachments {
        assert!(
            result.is_none(),
            "{text:?}: complete before its attachments"
        );
        result = decoder.decode_binary(a.clone(), now)?;
    }
    Ok(result.expect("complete after its attachments"))
}

fn same_packet(a: &Packet, b: &Packet) -> bool {
    a.nsp == b.nsp
        && a.attachments == b.attachments
        && match (&a.data, &b.data) {
            (PacketData::Connect(x), PacketData::Connect(y)) => match (x, y) {
                (Some(x), Some(y)) => same_json(x, y),
                (None, None) => true,
                _ => false,
            },
            (PacketData::Disconnect, PacketData::Disconnect) => true,
            (PacketData::ConnectError(x), PacketData::ConnectError(y)) => same_json(x, y),
            (
                PacketData::Event { name, args, id },
                PacketData::Event {
                    name: name2,
                    args: args2,
                    id: id2,
                },
            ) => name == name2 && id == id2 && same_args(args, args2),
            (
                PacketData::Ack { args, id },
                PacketData::Ack {
                    args: args2,
                    id: id2,
                },
            ) => id == id2 && same_args(args, args2),
            _ => false,
        }
}

fn same_args(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_json(x, y))
}

/// JSON equality, floats within a few ulps; without recursion.
fn same_json(a: &Value, b: &Value) -> bool {
    let mut todo = vec![(a, b)];
    while let Some((a, b)) = todo.pop() {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
                    return false;
                };
                if (x - y).abs() > 4.0 * f64::EPSILON * x.abs().max(y.abs()) {
                    return false;
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                todo.extend(x.iter().zip(y));
            }
            (Value::Object(x), Value::Object(y)) => {
                if x.len() != y.len() || !x.keys().eq(y.keys()) {
                    return false;
                }
                todo.extend(x.values().zip(y.values()));
            }
            (x, y) => {
                if x != y {
                    return false;
                }
            }
        }
    }
    true
}
