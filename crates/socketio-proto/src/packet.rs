//! The Socket.IO packet model and its text encoding.
//!
//! Wire form: `<type>[<attachments>-][/<nsp>,][<ack id>][<json>]`, for example
//! `2["hello",1]`, `21["ask"]` (ack id 21), `3/admin,21[true]`,
//! `51-["file",{"_placeholder":true,"num":0}]`, `0/admin,{"token":"x"}`, `1/admin,`.
//! The namespace `/` is omitted when encoding.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

/// The packet type digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`.
    Connect,
    /// `1`.
    Disconnect,
    /// `2`.
    Event,
    /// `3`.
    Ack,
    /// `4` (called ERROR in protocol v4).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketKind {
    /// The type from its wire digit.
    pub fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    /// The wire digit.
    pub fn digit(self) -> u8 {
        match self {
            Self::Connect => b'0',
            Self::Disconnect => b'1',
            Self::Event => b'2',
            Self::Ack => b'3',
            Self::ConnectError => b'4',
            Self::BinaryEvent => b'5',
            Self::BinaryAck => b'6',
        }
    }

    /// Whether this type announces attachments (`<count>-` after the digit).
    pub(crate) fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// What a packet carries, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketData {
    /// CONNECT. From a client: the optional `auth` object (v5). From the server: v5 sends
    /// `{"sid":"..."}`, v4 sends nothing.
    Connect(Option<Value>),
    /// DISCONNECT.
    Disconnect,
    /// EVENT or BINARY_EVENT: the event name, its arguments (placeholders where attachments
    /// go), and the ack id if the sender wants an answer.
    Event {
        /// The event name (the first element of the JSON array).
        name: String,
        /// The remaining elements.
        args: Vec<Value>,
        /// The ack id.
        id: Option<u64>,
    },
    /// ACK or BINARY_ACK: the answer to the event with ack `id`.
    Ack {
        /// The arguments of the answer.
        args: Vec<Value>,
        /// The ack id being answered.
        id: u64,
    },
    /// CONNECT_ERROR (v5: an object `{"message":...,"data":...}`) or ERROR (v4: a string).
    ConnectError(Value),
}

/// A whole Socket.IO packet, attachments included.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The namespace, always starting with `/`.
    pub nsp: String,
    /// The content.
    pub data: PacketData,
    /// Binary attachments, in placeholder order. Non-empty turns EVENT into BINARY_EVENT and ACK
    /// into BINARY_ACK when encoding.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// A packet with no attachments.
    pub fn new(nsp: impl Into<String>, data: PacketData) -> Self {
        Packet {
            nsp: nsp.into(),
            data,
            attachments: Vec::new(),
        }
    }

    /// The wire type: EVENT becomes BINARY_EVENT (ACK, BINARY_ACK) when there are attachments.
    ///
    /// Attachments on a CONNECT, DISCONNECT or CONNECT_ERROR packet do not change its type (those
    /// types cannot carry any).
    pub fn kind(&self) -> PacketKind {
        let binary = !self.attachments.is_empty();
        match self.data {
            PacketData::Connect(_) => PacketKind::Connect,
            PacketData::Disconnect => PacketKind::Disconnect,
            PacketData::ConnectError(_) => PacketKind::ConnectError,
            PacketData::Event { .. } if binary => PacketKind::BinaryEvent,
            PacketData::Event { .. } => PacketKind::Event,
            PacketData::Ack { .. } if binary => PacketKind::BinaryAck,
            PacketData::Ack { .. } => PacketKind::Ack,
        }
    }

    /// Encodes the text part (the attachments are sent after it, one binary message each).
    /// JSON is compact and keeps key order.
    ///
    /// The namespace is written as is (an empty one counts as `/`); the built-in parser has no
    /// escaping, so a namespace must not contain a `,`. The payload is not checked against the
    /// type: encoding trusts the packet it is given.
    ///
    /// The text is built in a buffer kept per thread and then copied once into a string of
    /// exactly its size: one allocation per packet, and a string whose bytes can be shared
    /// without another (see `bytes::Bytes::from`).
    pub fn encode(&self) -> String {
        /// The per-thread buffer is let go when a packet made it bigger than this.
        const KEPT_CAPACITY: usize = 64 * 1024;
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            let mut own = Vec::new();
            let mut borrowed = scratch.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own,
            };
            buf.clear();
            self.encode_into(buf);
            // Everything written is UTF-8 (ASCII, a `&str`, serde_json output), so this is
            // only a validation pass (`from_utf8`'s, faster on ASCII than the lossy one's);
            // nothing is ever replaced.
            let text = match std::str::from_utf8(buf) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(buf).into_owned(),
            };
            if buf.capacity() > KEPT_CAPACITY {
                *buf = Vec::new();
            }
            text
        })
    }

    /// Appends the text part to `buf` (see [`Packet::encode`]).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        let kind = self.kind();
        buf.push(kind.digit());
        if kind.is_binary() {
            write_decimal(buf, self.attachments.len() as u64);
            buf.push(b'-');
        }
        if !self.nsp.is_empty() && self.nsp != "/" {
            buf.extend_from_slice(self.nsp.as_bytes());
            buf.push(b',');
        }
        match &self.data {
            PacketData::Connect(None) | PacketData::Disconnect => {}
            PacketData::Connect(Some(value)) | PacketData::ConnectError(value) => {
                write_json(buf, value);
            }
            PacketData::Event { name, args, id } => {
                if let Some(id) = id {
                    write_decimal(buf, *id);
                }
                buf.push(b'[');
                write_json(buf, name.as_str());
                for arg in args {
                    buf.push(b',');
                    write_json(buf, arg);
                }
                buf.push(b']');
            }
            PacketData::Ack { args, id } => {
                write_decimal(buf, *id);
                buf.push(b'[');
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    write_json(buf, arg);
                }
                buf.push(b']');
            }
        }
    }
}

/// Appends `n` in decimal.
fn write_decimal(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `value` as compact JSON.
fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    // Serializing a `Value` or a `str` into a `Vec` cannot fail: no I/O, and `Value` maps only
    // have string keys.
    let result = serde_json::to_writer(&mut *buf, value);
    debug_assert!(result.is_ok(), "JSON serialization into a Vec failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::placeholder;
    use crate::decoder::{Decoder, DecoderLimits};
    use serde_json::json;
    use std::time::Instant;

    const ALL_KINDS: [PacketKind; 7] = [
        PacketKind::Connect,
        PacketKind::Disconnect,
        PacketKind::Event,
        PacketKind::Ack,
        PacketKind::ConnectError,
        PacketKind::BinaryEvent,
        PacketKind::BinaryAck,
    ];

    fn event(nsp: &str, name: &str, args: Vec<Value>, id: Option<u64>) -> Packet {
        Packet::new(
            nsp,
            PacketData::Event {
                name: name.to_owned(),
                args,
                id,
            },
        )
    }

    fn ack(nsp: &str, args: Vec<Value>, id: u64) -> Packet {
        Packet::new(nsp, PacketData::Ack { args, id })
    }

    /// Encodes `packet`, decodes the text and its attachments, and checks the result is equal.
    fn round_trip(packet: &Packet) -> String {
        let text = packet.encode();
        let now = Instant::now();
        let mut decoder = Decoder::new(DecoderLimits::default());
        let mut decoded = decoder.decode_text(&text, now).unwrap();
        for (i, attachment) in packet.attachments.iter().enumerate() {
            assert!(decoded.is_none(), "{text}: packet before attachment {i}");
            decoded = decoder.decode_binary(attachment.clone(), now).unwrap();
        }
        assert_eq!(decoded.as_ref(), Some(packet), "{text}");
        assert_eq!(decoder.deadline(), None);
        text
    }

    #[test]
    fn digits_round_trip() {
        for (i, kind) in ALL_KINDS.into_iter().enumerate() {
            let digit = b'0' + i as u8;
            assert_eq!(kind.digit(), digit);
            assert_eq!(PacketKind::from_digit(digit), Some(kind));
        }
        for c in [b'7', b'9', b'a', b'/', b' ', 0, 0xff, b'0' - 1] {
            assert_eq!(PacketKind::from_digit(c), None, "{c}");
        }
    }

    #[test]
    fn binary_kinds() {
        for kind in ALL_KINDS {
            assert_eq!(
                kind.is_binary(),
                matches!(kind, PacketKind::BinaryEvent | PacketKind::BinaryAck)
            );
        }
    }

    #[test]
    fn kind_follows_attachments() {
        let mut e = event("/", "a", vec![], None);
        assert_eq!(e.kind(), PacketKind::Event);
        e.attachments.push(Bytes::from_static(b"x"));
        assert_eq!(e.kind(), PacketKind::BinaryEvent);

        let mut a = ack("/", vec![], 1);
        assert_eq!(a.kind(), PacketKind::Ack);
        a.attachments.push(Bytes::new());
        assert_eq!(a.kind(), PacketKind::BinaryAck);

        let mut c = Packet::new("/", PacketData::Connect(None));
        c.attachments.push(Bytes::new());
        assert_eq!(c.kind(), PacketKind::Connect);
        assert_eq!(
            Packet::new("/", PacketData::Disconnect).kind(),
            PacketKind::Disconnect
        );
        assert_eq!(
            Packet::new("/", PacketData::ConnectError(json!("x"))).kind(),
            PacketKind::ConnectError
        );
    }

    #[test]
    fn encode_matches_the_spec_examples() {
        let cases = [
            (Packet::new("/", PacketData::Connect(None)), "0"),
            (Packet::new("/admin", PacketData::Connect(None)), "0/admin,"),
            (
                Packet::new(
                    "/admin",
                    PacketData::Connect(Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"}))),
                ),
                r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            ),
            (Packet::new("/", PacketData::Disconnect), "1"),
            (Packet::new("/admin", PacketData::Disconnect), "1/admin,"),
            (event("/", "hello", vec![json!(1)], None), r#"2["hello",1]"#),
            (event("/admin", "bar", vec![], None), r#"2/admin,["bar"]"#),
            (event("/", "foo", vec![], Some(12)), r#"212["foo"]"#),
            (
                event("/admin", "project:delete", vec![json!(123)], Some(456)),
                r#"2/admin,456["project:delete",123]"#,
            ),
            (ack("/admin", vec![], 456), "3/admin,456[]"),
            (
                ack("/admin", vec![json!("bar")], 13),
                r#"3/admin,13["bar"]"#,
            ),
            (ack("/", vec![json!(1), json!(null)], 0), "30[1,null]"),
            (
                Packet::new(
                    "/",
                    PacketData::ConnectError(json!({"message": "Not authorized"})),
                ),
                r#"4{"message":"Not authorized"}"#,
            ),
            (
                Packet::new("/admin", PacketData::ConnectError(json!("Not authorized"))),
                r#"4/admin,"Not authorized""#,
            ),
        ];
        for (packet, text) in cases {
            assert_eq!(packet.encode(), text);
        }
    }

    #[test]
    fn encode_binary() {
        let mut p = event("/", "baz", vec![placeholder(0)], None);
        p.attachments.push(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(p.encode(), r#"51-["baz",{"_placeholder":true,"num":0}]"#);

        let mut p = event("/admin", "baz", vec![placeholder(0), placeholder(1)], None);
        p.attachments = vec![Bytes::from_static(&[1, 2]), Bytes::from_static(&[3, 4])];
        assert_eq!(
            p.encode(),
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );

        let mut p = ack("/", vec![json!("bar"), placeholder(0)], 15);
        p.attachments.push(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(p.encode(), r#"61-15["bar",{"_placeholder":true,"num":0}]"#);

        let mut p = ack("/admin", vec![placeholder(0)], 1);
        p.attachments.push(Bytes::new());
        assert_eq!(p.encode(), r#"61-/admin,1[{"_placeholder":true,"num":0}]"#);

        let mut p = event("/", "many", vec![], Some(7));
        p.attachments = vec![Bytes::new(); 12];
        assert!(p.encode().starts_with("512-7[\"many\""));
    }

    #[test]
    fn encode_is_compact_and_escapes() {
        let p = event(
            "/ü",
            "quote\"back\\slash\nnewline é 😀",
            vec![json!({"a": [1, 2.5, {"b": null}]}), json!("tab\t")],
            None,
        );
        assert_eq!(
            p.encode(),
            r#"2/ü,["quote\"back\\slash\nnewline é 😀",{"a":[1,2.5,{"b":null}]},"tab\t"]"#
        );
    }

    #[test]
    fn encode_empty_namespace_is_main() {
        assert_eq!(Packet::new("", PacketData::Disconnect).encode(), "1");
        assert_eq!(event("", "a", vec![], Some(3)).encode(), r#"23["a"]"#);
    }

    #[test]
    fn encode_extreme_ack_ids() {
        assert_eq!(ack("/", vec![], 0).encode(), "30[]");
        assert_eq!(
            ack("/", vec![], u64::MAX).encode(),
            "318446744073709551615[]"
        );
        round_trip(&ack("/", vec![], u64::MAX));
        round_trip(&event("/x", "e", vec![], Some(u64::MAX)));
    }

    #[test]
    fn round_trip_every_kind_with_and_without_namespace_and_id() {
        let namespaces = ["/", "/admin", "/a/b-c_d.e", "/ünïcødé/名前/😀", "/123"];
        for nsp in namespaces {
            round_trip(&Packet::new(nsp, PacketData::Connect(None)));
            round_trip(&Packet::new(
                nsp,
                PacketData::Connect(Some(json!({"token": "abc", "n": [1, {"x": true}]}))),
            ));
            round_trip(&Packet::new(nsp, PacketData::Connect(Some(json!({})))));
            round_trip(&Packet::new(nsp, PacketData::Disconnect));
            round_trip(&Packet::new(
                nsp,
                PacketData::ConnectError(json!("Not authorized")),
            ));
            round_trip(&Packet::new(
                nsp,
                PacketData::ConnectError(json!({"message": "no", "data": {"code": "E_TOKEN"}})),
            ));
            for id in [None, Some(0), Some(1), Some(456)] {
                round_trip(&event(nsp, "hello", vec![], id));
                round_trip(&event(
                    nsp,
                    "",
                    vec![
                        json!(1),
                        json!("two"),
                        json!(null),
                        json!([3.5, {"k": "v"}]),
                    ],
                    id,
                ));
                let mut binary = event(
                    nsp,
                    "file",
                    vec![json!({"data": placeholder(1)}), placeholder(0)],
                    id,
                );
                binary.attachments = vec![
                    Bytes::from_static(b"first"),
                    Bytes::from_static(&[0, 255, 1]),
                ];
                round_trip(&binary);
            }
            for id in [0, 9, 456] {
                round_trip(&ack(nsp, vec![], id));
                round_trip(&ack(nsp, vec![json!(true), json!({"a": [1]})], id));
                let mut binary = ack(nsp, vec![placeholder(0)], id);
                binary.attachments = vec![Bytes::from_static(b"\x01\x02\x03")];
                round_trip(&binary);
            }
        }
    }

    #[test]
    fn round_trip_names_and_args_that_look_like_syntax() {
        for name in ["0", "1-", "/admin,", "[]", "{\"a\":1}", ",", "-"] {
            round_trip(&event("/", name, vec![json!(name)], Some(5)));
            round_trip(&event("/n", name, vec![json!(name)], None));
        }
    }

    #[test]
    fn encode_text_starts_with_the_type_digit() {
        let p = event("/", "a", vec![], None);
        assert_eq!(p.encode().as_bytes()[0], p.kind().digit());
    }
}
