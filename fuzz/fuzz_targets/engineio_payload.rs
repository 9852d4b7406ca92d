//! The Engine.IO decoders of `socketlet-engineio-proto` on any bytes, the way the engine uses
//! them: a polling POST body in every framing (v4 `\x1e`-separated text; v3 text
//! `<len>:<packet>` with UTF-16 lengths; v3 XHR2 binary; the JSONP form `d=...` of v3), and a
//! single packet as a WebSocket text or binary frame, in both versions.
//!
//! Beyond "no panic":
//! - limits: a body that decodes to n packets decodes the same with a limit of n and fails with
//!   `TooLarge` with a limit of n - 1; a body that fails, fails the same way or with `TooLarge`
//!   under any smaller limit; never more packets than the limit;
//! - round trips: the packets re-encode, in every framing of their version (and in v4's when
//!   no text holds its separator), to a body that decodes to the same packets, and encoding is
//!   stable; every packet re-encodes alone (text form, binary frame) and decodes equal;
//! - JSONP: what `decode_jsonp_form` returns is UTF-8 and decodes as v3 text; a payload escaped
//!   and form-encoded as socket.io-client 2.x does comes back unchanged; `jsonp_wrap` output
//!   never holds `<`, a raw line break or U+2028/U+2029, and reads back (as a JSON string) to
//!   the payload it wraps.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketlet_engineio_proto::payload::{self, Framing};
use socketlet_engineio_proto::ProtocolVersion::{self, V3, V4};
use socketlet_engineio_proto::{DecodeError, Packet, Str};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    // The three framings a POST body can have.
    for (version, binary_body) in [(V4, false), (V3, false), (V3, true)] {
        check_body(version, body.clone(), binary_body);
    }
    // A v4 body sent as octet-stream is the same text framing.
    assert_eq!(
        payload::decode(V4, body.clone(), true, usize::MAX),
        payload::decode(V4, body.clone(), false, usize::MAX)
    );

    // JSONP (v3 only): the form body, then the v3 text framing of its `d` field.
    if let Ok(inner) = payload::decode_jsonp_form(data) {
        let text = std::str::from_utf8(&inner).expect("a JSONP payload is UTF-8");
        check_jsonp_client_round_trip(text);
        if !inner.is_empty() {
            check_body(V3, inner, false);
        }
    }

    // One packet, as a WebSocket frame would carry it.
    for version in [V3, V4] {
        if let Ok(text) = Str::from_utf8(body.clone()) {
            if let Ok(packet) = Packet::decode_text(version, text) {
                check_packet(&packet);
            }
        }
        if let Ok(packet) = Packet::decode_binary(version, body.clone()) {
            assert!(matches!(packet, Packet::Binary(_)));
            check_packet(&packet);
        }
    }

    // Whatever the input, as a payload to wrap for a JSONP answer.
    check_jsonp_wrap(&String::from_utf8_lossy(data));
});

/// The framing a POST of `version` with that content type was decoded with.
fn framing_of(version: ProtocolVersion, binary_body: bool) -> Framing {
    match (version, binary_body) {
        (V4, _) => Framing::V4,
        (V3, false) => Framing::V3Text,
        (V3, true) => Framing::V3Binary,
    }
}

fn check_body(version: ProtocolVersion, body: Bytes, binary_body: bool) {
    let decode = |max: usize| payload::decode(version, body.clone(), binary_body, max);
    match decode(usize::MAX) {
        Ok(packets) => {
            let n = packets.len();
            assert!(n > 0, "a body decoded to no packet");
            assert_eq!(decode(n).as_ref(), Ok(&packets), "limit n");
            assert_eq!(decode(n - 1), Err(DecodeError::TooLarge), "limit n - 1");
            assert_eq!(decode(0), Err(DecodeError::TooLarge), "limit 0");
            if n > 2 {
                assert_eq!(decode(n / 2), Err(DecodeError::TooLarge), "limit n / 2");
            }
            check_round_trips(version, binary_body, &packets);
        }
        Err(error) => {
            assert_ne!(error, DecodeError::TooLarge, "no limit, yet too large");
            for max in [0, 1, 2, 16] {
                match decode(max) {
                    Err(e) if e == error || e == DecodeError::TooLarge => {}
                    other => panic!("limit {max}: {other:?}, without a limit: {error:?}"),
                }
            }
        }
    }
}

fn check_round_trips(version: ProtocolVersion, binary_body: bool, packets: &[Packet]) {
    // The framing it came in, then the others of its version: a v3 client may get either.
    let mut framings = vec![framing_of(version, binary_body)];
    if version == V3 {
        framings.push(framing_of(V3, !binary_body));
    }
    // Text that holds the v4 separator cannot travel in a v4 payload (nor does it come in one).
    let separator_free = packets.iter().all(|p| match p {
        Packet::Open(s) | Packet::Ping(s) | Packet::Pong(s) | Packet::Message(s) => {
            !s.contains('\u{1e}')
        }
        _ => true,
    });
    if version == V3 && separator_free {
        framings.push(Framing::V4);
    }
    for framing in framings {
        let encoded = payload::encode(framing, packets);
        let (v, binary) = match framing {
            Framing::V4 => (V4, false),
            Framing::V3Text => (V3, false),
            Framing::V3Binary => (V3, true),
        };
        assert_eq!(encoded.binary, binary, "{framing:?}: content type");
        let again = payload::decode(v, encoded.body.clone(), binary, packets.len())
            .unwrap_or_else(|e| panic!("{framing:?}: re-encoded body does not decode: {e:?}"));
        assert_eq!(again, packets, "{framing:?}: round trip");
        assert_eq!(
            payload::encode(framing, &again).body,
            encoded.body,
            "{framing:?}: encoding is not stable"
        );
        if framing == Framing::V3Text {
            // What a JSONP answer would carry.
            let text = std::str::from_utf8(&encoded.body).expect("v3 text framing is UTF-8");
            check_jsonp_wrap(text);
            check_jsonp_client_round_trip(text);
        }
    }
    // The content type the engine would pick for these packets.
    assert_eq!(
        payload::framing_for(V3, false, packets),
        if packets.iter().any(|p| matches!(p, Packet::Binary(_))) {
            Framing::V3Binary
        } else {
            Framing::V3Text
        }
    );
    for packet in packets {
        check_packet(packet);
    }
}

/// One packet alone: its text form in both versions, and its binary frame.
fn check_packet(packet: &Packet) {
    for version in [V3, V4] {
        let text = packet.to_text(version);
        assert_eq!(
            Packet::decode_text(version, text.clone()).as_ref(),
            Ok(packet),
            "{version:?}: text form {text:?}"
        );
        if let Packet::Binary(data) = packet {
            let frame = Packet::binary_frame(version, data);
            assert_eq!(
                Packet::decode_binary(version, frame).as_ref(),
                Ok(packet),
                "{version:?}: binary frame"
            );
        }
    }
}

/// What socket.io-client 2.x does to a payload before putting it in its JSONP form.
fn client_escape(payload: &str) -> String {
    payload.replace("\\n", "\\\n").replace('\n', "\\n")
}

/// A payload sent through a JSONP form as the client sends it comes back unchanged.
///
/// Except when a backslash precedes a line feed: the client's escaping writes that pair and a
/// backslash-`n` pair the same way (`\\n`), and Node's engine.io, like this server, reads it
/// back as backslash-`n`. Socket.IO payloads never hold a raw line feed (JSON escapes it).
fn check_jsonp_client_round_trip(payload: &str) {
    if payload.contains("\\\n") {
        return;
    }
    let escaped = client_escape(payload);
    let form = format!(
        "j=0&d={}",
        form_urlencoded::byte_serialize(escaped.as_bytes()).collect::<String>()
    );
    assert_eq!(
        payload::decode_jsonp_form(form.as_bytes()).as_deref(),
        Ok(payload.as_bytes()),
        "JSONP form of {payload:?}"
    );
}

/// `jsonp_wrap` makes a script that cannot break out of its string, and that reads back to the
/// payload.
fn check_jsonp_wrap(payload: &str) {
    let js = payload::jsonp_wrap(7, payload);
    assert!(!js.contains('<'), "{js:?}");
    assert!(!js.contains(['\n', '\r', '\u{2028}', '\u{2029}']), "{js:?}");
    let literal = js
        .strip_prefix("___eio[7](")
        .and_then(|s| s.strip_suffix(");"))
        .expect("the JSONP wrapper");
    let back: String = serde_json::from_str(literal).expect("the wrapped payload is a string");
    assert_eq!(back, payload);
}
