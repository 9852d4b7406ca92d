//! The msgpack parser: the format of `socket.io-msgpack-parser` 3.x (the client's `parser`
//! option, or the prebuilt `socket.io.msgpack.min.js`) and python-socketio's
//! `serializer='msgpack'`.
//!
//! Each packet is one msgpack map `{type, nsp, data?, id?}` sent as one binary message. Binary
//! values travel inline (msgpack `bin`): there are no attachments on the wire and no
//! BINARY_EVENT/BINARY_ACK types. In the packet model they are still attachments behind
//! placeholders, so the rest of the server does not care which parser a client speaks:
//! [`decode`] turns each `bin` into a placeholder and an attachment, [`encode`] puts each
//! attachment back where its placeholder stands.
//!
//! Limits: the same [`DecoderLimits`] as the JSON parser (the number and total size of binary
//! values), nesting at most [`MAX_DEPTH`], and only what JSON can hold (map keys are strings,
//! no extension types).

use crate::binary::{placeholder, placeholder_num};
use crate::decoder::{DecoderLimits, ParseError};
use crate::packet::{Packet, PacketData};
use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

/// The deepest nesting of a packet's data.
pub const MAX_DEPTH: usize = 64;

/// The msgpack of a packet (see the [module docs](self)).
pub fn encode(packet: &Packet) -> Vec<u8> {
    let bins = &packet.attachments;
    let (kind, data, id): (u8, Option<Mp>, Option<u64>) = match &packet.data {
        PacketData::Connect(payload) => (0, payload.as_ref().map(|v| to_mp(v, bins)), None),
        PacketData::Disconnect => (1, None, None),
        PacketData::Event { name, args, id } => {
            let mut all = Vec::with_capacity(args.len() + 1);
            all.push(Mp::from(name.as_str()));
            all.extend(args.iter().map(|a| to_mp(a, bins)));
            (2, Some(Mp::Array(all)), *id)
        }
        PacketData::Ack { args, id } => (
            3,
            Some(Mp::Array(args.iter().map(|a| to_mp(a, bins)).collect())),
            Some(*id),
        ),
        PacketData::ConnectError(v) => (4, Some(to_mp(v, bins)), None),
    };
    let nsp = if packet.nsp.is_empty() {
        "/"
    } else {
        &packet.nsp
    };
    let mut map = vec![
        (Mp::from("type"), Mp::from(kind)),
        (Mp::from("nsp"), Mp::from(nsp)),
    ];
    if let Some(data) = data {
        map.push((Mp::from("data"), data));
    }
    if let Some(id) = id {
        map.push((Mp::from("id"), Mp::from(id)));
    }
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &Mp::Map(map));
    out
}

/// JSON (with placeholders) as msgpack (with the attachments inline).
fn to_mp(v: &Value, bins: &[Bytes]) -> Mp {
    if let Some(bin) = placeholder_num(v).and_then(|n| bins.get(n)) {
        return Mp::Binary(bin.to_vec());
    }
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Mp::from(i)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(|x| to_mp(x, bins)).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, x)| (Mp::from(k.as_str()), to_mp(x, bins)))
                .collect(),
        ),
    }
}

/// A packet from its msgpack (see the [module docs](self)). Every error ends the connection,
/// as with the JSON parser.
pub fn decode(bytes: &[u8], limits: &DecoderLimits) -> Result<Packet, ParseError> {
    let mut reader = bytes;
    // rmpv counts nested calls, two per level of a map; the exact depth is checked after.
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, 2 * MAX_DEPTH + 3)
        .map_err(|_| ParseError::InvalidPayload)?;
    if !reader.is_empty() {
        return Err(ParseError::InvalidPayload);
    }
    let Mp::Map(entries) = value else {
        return Err(ParseError::InvalidPayload);
    };
    let (mut kind, mut nsp, mut data, mut id) = (None, None, None, None);
    for (k, v) in entries {
        match k.as_str() {
            Some("type") => kind = v.as_u64(),
            Some("nsp") => nsp = v.as_str().map(str::to_owned),
            Some("data") => data = Some(v),
            Some("id") => {
                id = match v {
                    Mp::Nil => None,
                    ref u if is_undefined(u) => None,
                    other => Some(other.as_u64().ok_or(ParseError::InvalidAckId)?),
                }
            }
            // Other keys are ignored, as the JavaScript decoder does: socket.io-client sends
            // its packet object whole, `options: {compress: true}` included.
            _ => {}
        }
    }
    let nsp = nsp.unwrap_or_else(|| "/".to_owned());
    if !nsp.starts_with('/') {
        return Err(ParseError::InvalidNamespace);
    }
    let mut bins = Vec::new();
    let mut json = |v: Mp| to_json(v, limits, &mut bins);
    // python-socketio writes `data: nil` where there is none, socket.io-client `undefined`
    // (a CONNECT without auth).
    let data = data.filter(|d| !d.is_nil() && !is_undefined(d));
    let payload = match kind.ok_or(ParseError::InvalidType)? {
        0 => match data {
            None => PacketData::Connect(None),
            Some(d) => match json(d)? {
                v @ Value::Object(_) => PacketData::Connect(Some(v)),
                _ => return Err(ParseError::InvalidPayload),
            },
        },
        1 => PacketData::Disconnect,
        2 => {
            let Some(Value::Array(mut all)) = data.map(&mut json).transpose()? else {
                return Err(ParseError::InvalidPayload);
            };
            if all.is_empty() {
                return Err(ParseError::InvalidPayload);
            }
            let Value::String(name) = all.remove(0) else {
                return Err(ParseError::InvalidPayload);
            };
            PacketData::Event {
                name,
                args: all,
                id,
            }
        }
        3 => {
            let Some(Value::Array(args)) = data.map(&mut json).transpose()? else {
                return Err(ParseError::InvalidPayload);
            };
            PacketData::Ack {
                args,
                id: id.ok_or(ParseError::InvalidAckId)?,
            }
        }
        4 => match data.map(&mut json).transpose()? {
            Some(v @ (Value::Object(_) | Value::String(_))) => PacketData::ConnectError(v),
            _ => return Err(ParseError::InvalidPayload),
        },
        _ => return Err(ParseError::InvalidType),
    };
    Ok(Packet {
        nsp,
        data: payload,
        attachments: bins,
    })
}

/// notepack's `undefined` (fixext 1 of type 0, payload 0), which socket.io-msgpack-parser
/// writes for a JavaScript `undefined`.
///
/// notepack writes an `ArrayBuffer` or a typed array (`Uint8Array`: what browsers send, having
/// no `Buffer`) as an extension of type 0 too, with the bytes as payload; the decoder cannot
/// tell a one-byte array holding 0 (`c7 01 00 00`) from `undefined` (`d4 00 00`) once rmpv
/// read them, and takes both for `undefined`. Any other extension of type 0 is binary data.
fn is_undefined(v: &Mp) -> bool {
    matches!(v, Mp::Ext(0, d) if d.as_slice() == [0])
}

/// msgpack as JSON: `bin` values become placeholders of attachments pushed to `bins`, within
/// the limits; `undefined` is `null` in an array and leaves its key out of a map, as
/// `JSON.stringify` has it. Iterative (a stack of containers being filled), depth-checked.
fn to_json(root: Mp, limits: &DecoderLimits, bins: &mut Vec<Bytes>) -> Result<Value, ParseError> {
    /// A container being filled: its values so far, and the items left (keys for maps).
    enum Frame {
        Array(Vec<Value>, std::vec::IntoIter<Mp>),
        Map(
            Map<String, Value>,
            std::vec::IntoIter<(Mp, Mp)>,
            Option<String>,
        ),
    }
    let mut bytes = 0usize;
    let mut leaf = |v: Mp, bins: &mut Vec<Bytes>| -> Result<Result<Value, Mp>, ParseError> {
        Ok(Ok(match v {
            Mp::Nil => Value::Null,
            Mp::Boolean(b) => Value::Bool(b),
            Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => Value::from(u),
                (None, Some(s)) => Value::from(s),
                _ => return Err(ParseError::InvalidPayload),
            },
            Mp::F32(f) => Number::from_f64(f64::from(f))
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Mp::F64(f) => Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Mp::String(s) => Value::String(s.into_str().ok_or(ParseError::InvalidPayload)?),
            ref u if is_undefined(u) => Value::Null,
            // Extensions of type 0: notepack's ArrayBuffer and typed arrays (see
            // `is_undefined`).
            Mp::Binary(b) | Mp::Ext(0, b) => {
                bytes += b.len();
                if bins.len() >= limits.max_attachments {
                    return Err(ParseError::InvalidAttachments);
                }
                if bytes > limits.max_attachment_bytes {
                    return Err(ParseError::AttachmentsTooLarge);
                }
                bins.push(Bytes::from(b));
                placeholder(bins.len() - 1)
            }
            Mp::Ext(..) => return Err(ParseError::InvalidPayload),
            container => return Ok(Err(container)),
        }))
    };
    let open = |v: Mp| match v {
        Mp::Array(a) => Frame::Array(Vec::with_capacity(a.len()), a.into_iter()),
        Mp::Map(m) => Frame::Map(Map::new(), m.into_iter(), None),
        // `leaf` handles everything else.
        _ => Frame::Array(Vec::new(), Vec::new().into_iter()),
    };
    let mut stack = match leaf(root, bins)? {
        Ok(v) => return Ok(v),
        Err(container) => vec![open(container)],
    };
    loop {
        if stack.len() > MAX_DEPTH {
            return Err(ParseError::InvalidPayload);
        }
        let Some(top) = stack.last_mut() else {
            return Err(ParseError::InvalidPayload);
        };
        let next = match top {
            Frame::Array(_, items) => items.next(),
            Frame::Map(_, items, key) => loop {
                match items.next() {
                    Some((_, v)) if is_undefined(&v) => continue,
                    Some((k, v)) => {
                        *key = Some(k.as_str().ok_or(ParseError::InvalidPayload)?.to_owned());
                        break Some(v);
                    }
                    None => break None,
                }
            },
        };
        let done = match next {
            Some(item) => match leaf(item, bins)? {
                Ok(v) => v,
                Err(container) => {
                    stack.push(open(container));
                    continue;
                }
            },
            // The container is full: it is the value for the one below.
            None => match stack.pop() {
                Some(Frame::Array(values, _)) => Value::Array(values),
                Some(Frame::Map(map, _, _)) => Value::Object(map),
                None => return Err(ParseError::InvalidPayload),
            },
        };
        match stack.last_mut() {
            None => return Ok(done),
            Some(Frame::Array(values, _)) => values.push(done),
            Some(Frame::Map(map, _, key)) => {
                if let Some(k) = key.take() {
                    map.insert(k, done);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(p: &Packet) -> Packet {
        decode(&encode(p), &DecoderLimits::default()).expect("decodes")
    }

    #[test]
    fn packets_round_trip_with_binary_inline() {
        let p = Packet {
            nsp: "/chat".into(),
            data: PacketData::Event {
                name: "file".into(),
                args: vec![
                    json!({"name": "a", "body": placeholder(0)}),
                    json!(-3),
                    json!(1.5),
                ],
                id: Some(7),
            },
            attachments: vec![Bytes::from_static(&[1, 2, 3])],
        };
        assert_eq!(round_trip(&p), p);
        let bytes = encode(&p);
        // The bytes are inline: no placeholder text, a bin value.
        assert!(!bytes.windows(12).any(|w| w == b"_placeholder"));
        for data in [
            PacketData::Connect(None),
            PacketData::Connect(Some(json!({"token": "x"}))),
            PacketData::Disconnect,
            PacketData::Ack {
                args: vec![json!(null), json!([true])],
                id: 0,
            },
            PacketData::ConnectError(json!({"message": "no"})),
        ] {
            let p = Packet::new("/", data);
            assert_eq!(round_trip(&p), p);
        }
    }

    /// A map as python-socketio or the JS parser writes it.
    fn mp(pairs: Vec<(&str, Mp)>) -> Vec<u8> {
        let map = Mp::Map(pairs.into_iter().map(|(k, v)| (Mp::from(k), v)).collect());
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &map).expect("encode");
        out
    }

    #[test]
    fn python_socketio_writes_data_nil_and_the_js_parser_leaves_it_out() {
        let limits = DecoderLimits::default();
        let python = mp(vec![
            ("type", Mp::from(1)),
            ("data", Mp::Nil),
            ("nsp", Mp::from("/")),
            ("id", Mp::Nil),
        ]);
        assert_eq!(
            decode(&python, &limits).map(|p| p.data),
            Ok(PacketData::Disconnect)
        );
        let js = mp(vec![("type", Mp::from(1)), ("nsp", Mp::from("/admin"))]);
        let p = decode(&js, &limits).expect("decodes");
        assert_eq!((p.nsp.as_str(), p.data), ("/admin", PacketData::Disconnect));
        let connect = mp(vec![
            ("type", Mp::from(0)),
            ("nsp", Mp::from("/")),
            ("data", Mp::Nil),
        ]);
        assert_eq!(
            decode(&connect, &limits).map(|p| p.data),
            Ok(PacketData::Connect(None))
        );
    }

    #[test]
    fn other_keys_are_ignored_as_socket_io_client_sends_them() {
        // socket.io-client 4.8 with socket.io-msgpack-parser 3.0.2, for `emit("echo", 1, ack)`:
        // `{type: 2, data: ["echo", 1], options: {compress: true}, id: 0, nsp: "/"}`.
        let bytes = b"\x85\xa4type\x02\xa4data\x92\xa4echo\x01\xa7options\x81\xa8compress\xc3\xa2id\x00\xa3nsp\xa1/";
        let p = decode(bytes, &DecoderLimits::default()).expect("decodes");
        assert_eq!(
            p.data,
            PacketData::Event {
                name: "echo".into(),
                args: vec![serde_json::json!(1)],
                id: Some(0),
            }
        );
        // A CONNECT without auth: `{type: 0, data: undefined, nsp: "/nope"}`.
        let connect = b"\x83\xa4type\x00\xa4data\xd4\x00\x00\xa3nsp\xa5/nope";
        let p = decode(connect, &DecoderLimits::default()).expect("decodes");
        assert_eq!(
            (p.nsp.as_str(), p.data),
            ("/nope", PacketData::Connect(None))
        );
        // `undefined` in the data: `null` in an array, no key in a map (as JSON.stringify).
        let undefined = Mp::Ext(0, vec![0]);
        let event = mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("/")),
            (
                "data",
                Mp::Array(vec![
                    Mp::from("e"),
                    undefined.clone(),
                    Mp::Map(vec![
                        (Mp::from("a"), undefined.clone()),
                        (Mp::from("b"), Mp::from(1)),
                    ]),
                ]),
            ),
            ("id", undefined),
        ]);
        assert_eq!(
            decode(&event, &DecoderLimits::default()).map(|p| p.data),
            Ok(PacketData::Event {
                name: "e".into(),
                args: vec![serde_json::Value::Null, serde_json::json!({"b": 1})],
                id: None,
            })
        );
        // A Uint8Array (notepack's extension of type 0) is binary data; other extensions are
        // refused.
        let typed = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa1e\xc7\x03\x00\x01\x02\x03";
        let p = decode(typed, &DecoderLimits::default()).expect("decodes");
        assert_eq!(p.attachments, [Bytes::from_static(&[1, 2, 3])]);
        assert!(matches!(p.data, PacketData::Event { ref args, .. } if args == &[placeholder(0)]));
        let ext = mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("/")),
            ("data", Mp::Array(vec![Mp::from("e"), Mp::Ext(5, vec![1])])),
        ]);
        assert!(decode(&ext, &DecoderLimits::default()).is_err());
    }

    #[test]
    fn bad_input_is_an_error_and_limits_hold() {
        let limits = DecoderLimits::default();
        let bad = |b: Vec<u8>| decode(&b, &limits).is_err();
        assert!(bad(vec![]));
        assert!(bad(vec![0xc1]));
        assert!(bad(mp(vec![("type", Mp::from(9)), ("nsp", Mp::from("/"))])));
        assert!(bad(mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("/")),
            ("data", Mp::Array(vec![]))
        ])));
        assert!(bad(mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("/")),
            ("data", Mp::Array(vec![Mp::from(1)]))
        ])));
        assert!(
            bad(mp(vec![
                ("type", Mp::from(3)),
                ("nsp", Mp::from("/")),
                ("data", Mp::Array(vec![]))
            ])),
            "an ACK needs an id"
        );
        assert!(bad(mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("nope")),
            ("data", Mp::Array(vec![Mp::from("e")]))
        ])));
        // A map key that JSON cannot hold.
        let int_key = Mp::Map(vec![(Mp::from(1), Mp::from(2))]);
        assert!(bad(mp(vec![
            ("type", Mp::from(2)),
            ("nsp", Mp::from("/")),
            ("data", Mp::Array(vec![Mp::from("e"), int_key]))
        ])));
        // Too many or too big binary values.
        let bins = |n: usize, size: usize| {
            let mut all = vec![Mp::from("e")];
            all.extend((0..n).map(|_| Mp::Binary(vec![0; size])));
            mp(vec![
                ("type", Mp::from(2)),
                ("nsp", Mp::from("/")),
                ("data", Mp::Array(all)),
            ])
        };
        assert!(decode(&bins(10, 10), &limits).is_ok());
        assert_eq!(
            decode(&bins(11, 10), &limits).map(|_| ()),
            Err(ParseError::InvalidAttachments)
        );
        assert_eq!(
            decode(&bins(2, 600_000), &limits).map(|_| ()),
            Err(ParseError::AttachmentsTooLarge)
        );
        // Deep nesting, to the limit and past it (written byte by byte: building a deep value
        // would recurse when dropped).
        let nested = |depth: usize| {
            let mut b = vec![0x83, 0xa4];
            b.extend_from_slice(b"type");
            b.push(0x02);
            b.push(0xa3);
            b.extend_from_slice(b"nsp");
            b.extend_from_slice(&[0xa1, b'/', 0xa4]);
            b.extend_from_slice(b"data");
            b.extend_from_slice(&[0x92, 0xa1, b'e']);
            b.extend(std::iter::repeat_n(0x91, depth));
            b.push(0x01);
            b
        };
        assert!(decode(&nested(MAX_DEPTH - 2), &limits).is_ok());
        assert!(decode(&nested(MAX_DEPTH + 5), &limits).is_err());
        assert!(decode(&nested(100_000), &limits).is_err());
    }
}
