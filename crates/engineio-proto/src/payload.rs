//! The long-polling framing of several packets in one HTTP body.
//!
//! - **v4**: text packets joined by the record separator `\x1e`; a binary packet is `b<base64>`.
//! - **v3, text**: every packet is `<length>:<packet>`, where the length counts UTF-16 code units
//!   of the packet's text form (`€` counts 1, an emoji 2). Binary packets are `b4<base64>` (with the
//!   length prefix) when the client asked for base64 (`b64=1`).
//! - **v3, XHR2 binary** (a v3 client without `b64=1`, when the payload holds binary data): every
//!   packet is `<0 for text | 1 for binary><length as one byte per decimal digit, each 0..=9>\xff`
//!   followed by the packet (text form for text packets; type byte 4 plus raw data for binary).
//! - **v3, JSONP**: the GET answer is `___eio[<n>]("<payload as a JS string literal>");` and the
//!   POST body is a form `d=<url-encoded payload>` where the payload is the v3 text framing.

use crate::{DecodeError, Packet, ProtocolVersion, Str};
use bytes::Bytes;

/// How the packets of one polling response are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// v4 text framing (`\x1e` separated).
    V4,
    /// v3 text framing; binary packets as `b4<base64>`.
    V3Text,
    /// v3 XHR2 binary framing (only used when the payload holds a binary packet and the client
    /// did not ask for base64).
    V3Binary,
}

/// An encoded polling body and the content type that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPayload {
    /// The body.
    pub body: Bytes,
    /// `true` when the body is binary (`application/octet-stream`), `false` for
    /// `text/plain; charset=UTF-8`.
    pub binary: bool,
}

/// Picks the framing for a response to a client of `version`: v4 always uses [`Framing::V4`]; v3
/// uses [`Framing::V3Binary`] only if `b64` is false and some packet is [`Packet::Binary`].
pub fn framing_for(version: ProtocolVersion, b64: bool, packets: &[Packet]) -> Framing {
    match version {
        ProtocolVersion::V4 => Framing::V4,
        ProtocolVersion::V3 => {
            if !b64 && packets.iter().any(|p| matches!(p, Packet::Binary(_))) {
                Framing::V3Binary
            } else {
                Framing::V3Text
            }
        }
    }
}

/// Encodes `packets` for a polling GET response with the given framing.
///
/// An empty `packets` gives an empty body, except with [`Framing::V3Text`] where it gives `0:`
/// (what the reference server sends; a v3 client treats an empty text body as a parse error).
///
/// In [`Framing::V3Binary`] the length of a text packet counts the bytes of its UTF-8 form, not
/// UTF-16 units: the reference parser (engine.io-parser 2.x) UTF-8-encodes the packet into a
/// one-byte-per-char string before measuring it, and the v3 spec's example frames `4€` with
/// length 4.
pub fn encode(framing: Framing, packets: &[Packet]) -> EncodedPayload {
    match framing {
        Framing::V4 => {
            let mut out = String::new();
            for (i, packet) in packets.iter().enumerate() {
                if i > 0 {
                    out.push(V4_SEPARATOR);
                }
                packet.encode_text(ProtocolVersion::V4, &mut out);
            }
            EncodedPayload {
                body: Bytes::from(out),
                binary: false,
            }
        }
        Framing::V3Text => {
            if packets.is_empty() {
                return EncodedPayload {
                    body: Bytes::from_static(b"0:"),
                    binary: false,
                };
            }
            let mut out = String::new();
            let mut text = String::new();
            for packet in packets {
                text.clear();
                packet.encode_text(ProtocolVersion::V3, &mut text);
                let units: usize = text.chars().map(char::len_utf16).sum();
                out.push_str(&units.to_string());
                out.push(':');
                out.push_str(&text);
            }
            EncodedPayload {
                body: Bytes::from(out),
                binary: false,
            }
        }
        Framing::V3Binary => {
            let mut out = Vec::new();
            let mut text = String::new();
            for packet in packets {
                match packet {
                    Packet::Binary(data) => {
                        push_xhr2_header(&mut out, XHR2_BINARY, data.len() + 1);
                        out.push(4);
                        out.extend_from_slice(data);
                    }
                    _ => {
                        text.clear();
                        packet.encode_text(ProtocolVersion::V3, &mut text);
                        push_xhr2_header(&mut out, XHR2_TEXT, text.len());
                        out.extend_from_slice(text.as_bytes());
                    }
                }
            }
            EncodedPayload {
                body: Bytes::from(out),
                binary: true,
            }
        }
    }
}

/// The v4 packet separator (ASCII record separator).
const V4_SEPARATOR: char = '\u{1e}';
/// XHR2 marker byte of a text packet.
const XHR2_TEXT: u8 = 0;
/// XHR2 marker byte of a binary packet.
const XHR2_BINARY: u8 = 1;
/// XHR2 byte ending the length digits.
const XHR2_LENGTH_END: u8 = 255;
/// The most length digits accepted when decoding (far more than any real body needs; keeps the
/// arithmetic from overflowing).
const MAX_LENGTH_DIGITS: usize = 15;

/// Appends `<kind><decimal digits of len, one byte each>\xff`.
fn push_xhr2_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend(len.to_string().bytes().map(|d| d - b'0'));
    out.push(XHR2_LENGTH_END);
}

/// Decodes a polling POST body.
///
/// `binary_body` is true when the request's content type is `application/octet-stream` (only
/// meaningful for v3's XHR2 framing). At most `max_packets` packets are accepted
/// ([`DecodeError::TooLarge`] past that). Text packets are slices of `body` (no copy).
///
/// Errors on anything malformed: a v3 length that is not a number, is zero-length with no type,
/// or runs past the end of the body ([`DecodeError::BadLength`]); bad UTF-8; bad base64; an
/// unknown packet type; an empty body.
///
/// Details of this implementation:
/// - an empty body is [`DecodeError::Empty`], in every framing; so is an empty packet between two
///   v4 separators;
/// - a v3 text length counts UTF-16 units; one that cuts a surrogate pair is
///   [`DecodeError::BadLength`];
/// - in the v3 XHR2 framing a text packet's length counts UTF-8 bytes (see [`encode`]); a marker
///   byte other than 0/1, a digit byte over 9, no digits, a missing `\xff` or more than 15
///   digits are [`DecodeError::BadLength`]; a binary packet whose type byte is not 4 is
///   [`DecodeError::UnknownPacketType`].
pub fn decode(
    version: ProtocolVersion,
    body: Bytes,
    binary_body: bool,
    max_packets: usize,
) -> Result<Vec<Packet>, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut out = Packets {
        packets: Vec::new(),
        max: max_packets,
    };
    match version {
        ProtocolVersion::V4 => decode_v4(body, &mut out)?,
        ProtocolVersion::V3 if binary_body => decode_v3_binary(body, &mut out)?,
        ProtocolVersion::V3 => decode_v3_text(body, &mut out)?,
    }
    Ok(out.packets)
}

/// The packets decoded so far, with the limit on their number.
struct Packets {
    packets: Vec<Packet>,
    max: usize,
}

impl Packets {
    /// Fails with [`DecodeError::TooLarge`] before a packet past the limit is decoded.
    fn check_room(&self) -> Result<(), DecodeError> {
        if self.packets.len() >= self.max {
            Err(DecodeError::TooLarge)
        } else {
            Ok(())
        }
    }
}

fn decode_v4(body: Bytes, out: &mut Packets) -> Result<(), DecodeError> {
    let text = Str::from_utf8(body).map_err(|_| DecodeError::InvalidUtf8)?;
    let mut start = 0;
    for piece in text.split(V4_SEPARATOR) {
        out.check_room()?;
        let end = start + piece.len();
        let slice = text.slice(start..end).ok_or(DecodeError::InvalidUtf8)?;
        out.packets
            .push(Packet::decode_text(ProtocolVersion::V4, slice)?);
        start = end + V4_SEPARATOR.len_utf8();
    }
    Ok(())
}

fn decode_v3_text(body: Bytes, out: &mut Packets) -> Result<(), DecodeError> {
    let text = Str::from_utf8(body).map_err(|_| DecodeError::InvalidUtf8)?;
    let s = text.as_str();
    let mut pos = 0;
    while pos < s.len() {
        let rest = s.get(pos..).ok_or(DecodeError::BadLength)?;
        let colon = rest.find(':').ok_or(DecodeError::BadLength)?;
        let units = parse_length(rest.get(..colon).ok_or(DecodeError::BadLength)?.bytes())?;
        let start = pos + colon + 1;
        let len = utf16_prefix_len(s.get(start..).ok_or(DecodeError::BadLength)?, units)?;
        out.check_room()?;
        let packet_text = text
            .slice(start..start + len)
            .ok_or(DecodeError::BadLength)?;
        out.packets
            .push(Packet::decode_text(ProtocolVersion::V3, packet_text)?);
        pos = start + len;
    }
    Ok(())
}

/// Parses a length written as decimal digits (each item 0..=9). Fails on no digits, too many
/// digits, a non-digit or a zero length (a packet needs at least its type).
fn parse_length(digits: impl Iterator<Item = u8>) -> Result<usize, DecodeError> {
    let mut n: usize = 0;
    let mut count = 0;
    for d in digits {
        let d = match d {
            b'0'..=b'9' => d - b'0',
            _ => return Err(DecodeError::BadLength),
        };
        count += 1;
        if count > MAX_LENGTH_DIGITS {
            return Err(DecodeError::BadLength);
        }
        n = n * 10 + usize::from(d);
    }
    if count == 0 || n == 0 {
        return Err(DecodeError::BadLength);
    }
    Ok(n)
}

/// The byte length of the prefix of `s` that is exactly `units` UTF-16 code units long.
fn utf16_prefix_len(s: &str, units: usize) -> Result<usize, DecodeError> {
    let mut counted = 0;
    for (i, c) in s.char_indices() {
        if counted == units {
            return Ok(i);
        }
        counted += c.len_utf16();
        if counted > units {
            // The length ends inside a surrogate pair.
            return Err(DecodeError::BadLength);
        }
    }
    if counted == units {
        Ok(s.len())
    } else {
        Err(DecodeError::BadLength)
    }
}

fn decode_v3_binary(body: Bytes, out: &mut Packets) -> Result<(), DecodeError> {
    let mut pos = 0;
    while pos < body.len() {
        let rest = body.get(pos..).ok_or(DecodeError::BadLength)?;
        let (&kind, after_kind) = rest.split_first().ok_or(DecodeError::BadLength)?;
        if kind != XHR2_TEXT && kind != XHR2_BINARY {
            return Err(DecodeError::BadLength);
        }
        let end_mark = after_kind
            .iter()
            .take(MAX_LENGTH_DIGITS + 1)
            .position(|&b| b == XHR2_LENGTH_END)
            .ok_or(DecodeError::BadLength)?;
        let digits = after_kind.get(..end_mark).ok_or(DecodeError::BadLength)?;
        if digits.iter().any(|&d| d > 9) {
            return Err(DecodeError::BadLength);
        }
        // Digits are raw values 0..=9 here; shift them into ASCII for the shared parser.
        let len = parse_length(digits.iter().map(|&d| d + b'0'))?;
        let start = pos + 1 + end_mark + 1;
        let end = start.checked_add(len).ok_or(DecodeError::BadLength)?;
        if end > body.len() {
            return Err(DecodeError::BadLength);
        }
        out.check_room()?;
        let packet_bytes = body.slice(start..end);
        let packet = if kind == XHR2_TEXT {
            let text = Str::from_utf8(packet_bytes).map_err(|_| DecodeError::InvalidUtf8)?;
            Packet::decode_text(ProtocolVersion::V3, text)?
        } else {
            Packet::decode_binary(ProtocolVersion::V3, packet_bytes)?
        };
        out.packets.push(packet);
        pos = end;
    }
    Ok(())
}

/// Wraps an encoded v3 text payload for a JSONP GET response:
/// `___eio[<index>]("<payload escaped as a JS string>");`.
///
/// The payload is escaped so that it is a valid JavaScript double-quoted string literal and can
/// never close the `<script>` element or the string early: `\` and `"` are escaped, control
/// characters and U+2028/U+2029 become `\uXXXX`, and `<` is written `\u003c`.
///
/// "Control characters" here are all of Unicode's `Cc` category (U+0000..=U+001F and
/// U+007F..=U+009F), written with lowercase hex digits (`\n` becomes `\u000a`). Everything else,
/// non-ASCII included, is written as is (the response is UTF-8).
pub fn jsonp_wrap(index: u32, payload: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(payload.len() + 24);
    out.push_str("___eio[");
    out.push_str(&index.to_string());
    out.push_str("](\"");
    for c in payload.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '<' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push_str("\");");
    out
}

/// Extracts the payload from a JSONP POST body, a form `d=<url-encoded payload>` (other fields
/// are ignored; `+` is a space).
///
/// Before URL-encoding, socket.io-client 2.x escapes the payload text so a browser form cannot
/// turn newlines into CRLF: every backslash-`n` pair becomes backslash-backslash-`n`, then every
/// newline character becomes backslash-`n`. This reverses it in one left-to-right pass:
/// backslash-backslash-`n` gives backslash-`n`, a lone backslash-`n` gives a newline, anything
/// else is kept.
/// Errors with [`DecodeError::BadJsonp`] when there is no `d` field or its %-escaping is bad.
///
/// Details of this implementation: field names are URL-decoded too (`%64` is `d`) and the first
/// `d` field wins; only its value's escaping is checked (a `%` not followed by two hex digits is
/// [`DecodeError::BadJsonp`]). A `d` field without `=` is an empty payload. The result must be
/// UTF-8 (it is the v3 text framing): otherwise [`DecodeError::InvalidUtf8`].
pub fn decode_jsonp_form(body: &[u8]) -> Result<Bytes, DecodeError> {
    for field in body.split(|&b| b == b'&') {
        let (name, value) = match field.iter().position(|&b| b == b'=') {
            Some(i) => (
                field.get(..i).unwrap_or_default(),
                field.get(i + 1..).unwrap_or_default(),
            ),
            None => (field, &[][..]),
        };
        // A name with bad escaping is not `d`: skip it like any other field.
        if url_decode(name).ok().as_deref() != Some(&b"d"[..]) {
            continue;
        }
        let payload = unescape_newlines(&url_decode(value)?);
        std::str::from_utf8(&payload).map_err(|_| DecodeError::InvalidUtf8)?;
        return Ok(Bytes::from(payload));
    }
    Err(DecodeError::BadJsonp)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
fn url_decode(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).and_then(|&h| hex_value(h));
                let lo = input.get(i + 2).and_then(|&l| hex_value(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(DecodeError::BadJsonp),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The value of one hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reverses the client's newline escaping (see [`decode_jsonp_form`]).
fn unescape_newlines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let next = input.get(i + 1).copied();
        let next2 = input.get(i + 2).copied();
        match (b, next, next2) {
            (b'\\', Some(b'\\'), Some(b'n')) => {
                out.extend_from_slice(b"\\n");
                i += 3;
            }
            (b'\\', Some(b'n'), _) => {
                out.push(b'\n');
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use ProtocolVersion::{V3, V4};

    fn msg(s: &'static str) -> Packet {
        Packet::Message(Str::from_static(s))
    }

    fn bin(b: &'static [u8]) -> Packet {
        Packet::Binary(Bytes::from_static(b))
    }

    fn dec(
        v: ProtocolVersion,
        body: &'static [u8],
        binary_body: bool,
    ) -> Result<Vec<Packet>, DecodeError> {
        decode(v, Bytes::from_static(body), binary_body, 100)
    }

    // ---- framing_for ----

    #[test]
    fn framing_choices() {
        let text = [msg("a"), Packet::Ping(Str::new())];
        let mixed = [msg("a"), bin(&[1])];
        for b64 in [false, true] {
            assert_eq!(framing_for(V4, b64, &text), Framing::V4);
            assert_eq!(framing_for(V4, b64, &mixed), Framing::V4);
            assert_eq!(framing_for(V4, b64, &[]), Framing::V4);
            assert_eq!(framing_for(V3, b64, &text), Framing::V3Text);
            assert_eq!(framing_for(V3, b64, &[]), Framing::V3Text);
        }
        assert_eq!(framing_for(V3, true, &mixed), Framing::V3Text);
        assert_eq!(framing_for(V3, false, &mixed), Framing::V3Binary);
        assert_eq!(framing_for(V3, false, &[bin(&[])]), Framing::V3Binary);
    }

    // ---- v4 ----

    #[test]
    fn v4_encode() {
        let p = encode(
            Framing::V4,
            &[msg("hello"), Packet::Ping(Str::new()), msg("world")],
        );
        assert_eq!(&p.body[..], b"4hello\x1e2\x1e4world");
        assert!(!p.binary);
        let p = encode(Framing::V4, &[msg("hello"), bin(&[1, 2, 3, 4])]);
        assert_eq!(&p.body[..], b"4hello\x1ebAQIDBA==");
        assert!(!p.binary);
        let p = encode(Framing::V4, &[Packet::Noop]);
        assert_eq!(&p.body[..], b"6");
        let p = encode(Framing::V4, &[]);
        assert!(p.body.is_empty());
    }

    #[test]
    fn v4_decode() {
        for binary_body in [false, true] {
            assert_eq!(
                dec(V4, b"4hello\x1e2\x1e4world", binary_body),
                Ok(vec![msg("hello"), Packet::Ping(Str::new()), msg("world")])
            );
            assert_eq!(
                dec(V4, b"4hello\x1ebAQIDBA==\x1eb\x1e2probe", binary_body),
                Ok(vec![
                    msg("hello"),
                    bin(&[1, 2, 3, 4]),
                    bin(&[]),
                    Packet::Ping(Str::from_static("probe"))
                ])
            );
            assert_eq!(
                dec(V4, "4€😀你好".as_bytes(), binary_body),
                Ok(vec![msg("€😀你好")])
            );
        }
    }

    #[test]
    fn v4_round_trip() {
        let packets = vec![
            Packet::Open(Str::from_static(r#"{"sid":"x"}"#)),
            msg("€ 😀 你好"),
            bin(&[0, 255, 1]),
            Packet::Pong(Str::from_static("probe")),
            msg(""),
            bin(&[]),
            Packet::Close,
            Packet::Upgrade,
            Packet::Noop,
        ];
        let p = encode(framing_for(V4, false, &packets), &packets);
        assert_eq!(decode(V4, p.body, false, 100), Ok(packets));
    }

    #[test]
    fn v4_decode_is_zero_copy() {
        let body = Bytes::from(b"4ab\x1e4cd".to_vec());
        let base = body.as_ptr() as usize;
        let packets = decode(V4, body, false, 10).unwrap();
        let ptrs: Vec<usize> = packets
            .iter()
            .map(|p| match p {
                Packet::Message(s) => s.as_bytes().as_ptr() as usize - base,
                _ => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(ptrs, [1, 5]);
    }

    #[test]
    fn v4_decode_errors() {
        assert_eq!(dec(V4, b"", false), Err(DecodeError::Empty));
        assert_eq!(dec(V4, b"\x1e", false), Err(DecodeError::Empty));
        assert_eq!(dec(V4, b"4a\x1e", false), Err(DecodeError::Empty));
        assert_eq!(dec(V4, b"4a\x1e\x1e4b", false), Err(DecodeError::Empty));
        assert_eq!(
            dec(V4, b"4a\x1e9", false),
            Err(DecodeError::UnknownPacketType(b'9'))
        );
        assert_eq!(
            dec(V4, b"4a\x1eb!!", false),
            Err(DecodeError::InvalidBase64)
        );
        assert_eq!(dec(V4, b"4\xff", false), Err(DecodeError::InvalidUtf8));
        assert_eq!(dec(V4, b"4\xe2\x82", true), Err(DecodeError::InvalidUtf8));
    }

    // ---- v3 text ----

    #[test]
    fn v3_text_encode_spec_examples() {
        let p = encode(Framing::V3Text, &[msg("hello"), msg("€")]);
        assert_eq!(std::str::from_utf8(&p.body), Ok("6:4hello2:4€"));
        assert!(!p.binary);
        let p = encode(Framing::V3Text, &[msg("€"), bin(&[1, 2, 3, 4])]);
        assert_eq!(std::str::from_utf8(&p.body), Ok("2:4€10:b4AQIDBA=="));
        let open = r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#;
        let p = encode(Framing::V3Text, &[Packet::Open(Str::from_static(open))]);
        assert_eq!(std::str::from_utf8(&p.body).unwrap(), format!("96:0{open}"));
    }

    #[test]
    fn v3_text_lengths_count_utf16_units() {
        let cases: [(&[Packet], &str); 6] = [
            (&[msg("😀")], "3:4😀"),
            (&[msg("你好")], "3:4你好"),
            (&[msg("€😀你")], "5:4€😀你"),
            (&[msg("a😀😀b")], "7:4a😀😀b"),
            (&[Packet::Ping(Str::new()), msg("é")], "1:22:4é"),
            (&[msg("𝄞x"), Packet::Noop], "4:4𝄞x1:6"),
        ];
        for (packets, wire) in cases {
            let p = encode(Framing::V3Text, packets);
            assert_eq!(std::str::from_utf8(&p.body), Ok(wire));
            assert_eq!(
                decode(V3, p.body, false, 100).as_deref(),
                Ok(packets),
                "{wire}"
            );
        }
    }

    #[test]
    fn v3_text_encode_empty_is_zero_colon() {
        assert_eq!(&encode(Framing::V3Text, &[]).body[..], b"0:");
        assert!(encode(Framing::V3Binary, &[]).body.is_empty());
    }

    #[test]
    fn v3_text_decode() {
        assert_eq!(
            dec(V3, b"6:4hello6:4world", false),
            Ok(vec![msg("hello"), msg("world")])
        );
        assert_eq!(
            dec(V3, "2:4€10:b4AQIDBA==1:2".as_bytes(), false),
            Ok(vec![msg("€"), bin(&[1, 2, 3, 4]), Packet::Ping(Str::new())])
        );
        // A message may hold colons, digits and separators.
        assert_eq!(
            dec(V3, b"9:412:4ab\x1e:1:6", false),
            Ok(vec![msg("12:4ab\x1e:"), Packet::Noop])
        );
        // Leading zeros are tolerated (the reference parser does).
        assert_eq!(dec(V3, b"06:4hello", false), Ok(vec![msg("hello")]));
    }

    #[test]
    fn v3_text_round_trip_mixed() {
        let packets = vec![
            Packet::Open(Str::from_static(r#"{"sid":"x"}"#)),
            msg("€ 😀 你好 ok"),
            bin(&[0, 255, 1]),
            Packet::Pong(Str::from_static("probe")),
            msg(""),
            bin(&[]),
            Packet::Close,
            Packet::Upgrade,
            Packet::Noop,
        ];
        let p = encode(framing_for(V3, true, &packets), &packets);
        assert!(!p.binary);
        assert_eq!(decode(V3, p.body, false, 100), Ok(packets));
    }

    #[test]
    fn v3_text_decode_is_zero_copy() {
        let body = Bytes::from("4:4€😀2:4b".as_bytes().to_vec());
        let base = body.as_ptr() as usize;
        let packets = decode(V3, body, false, 10).unwrap();
        assert_eq!(packets, vec![msg("€😀"), msg("b")]);
        let Packet::Message(second) = &packets[1] else {
            panic!()
        };
        assert_eq!(second.as_bytes().as_ptr() as usize - base, 13);
    }

    #[test]
    fn v3_text_malformed_lengths() {
        let bad: [&[u8]; 20] = [
            b"x:4a",
            b":4a",
            b"4a",
            b"2",
            b"10:4a",
            b"3:4a",
            b"2:4a2",
            b"2:4a2:",
            b"0:",
            b"0:4a",
            b"2:4a0:",
            b"-1:4",
            b"+2:4a",
            b" 2:4a",
            b"2 :4a",
            b"1e1:4aaaaaaaaa",
            b"0x2:4a",
            b"99999999999999999999:4a",
            b"18446744073709551617:4",
            b"1:4zz",
        ];
        for body in bad {
            assert_eq!(
                dec(V3, body, false),
                Err(DecodeError::BadLength),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn v3_text_length_cutting_a_character() {
        // `4😀` is 3 UTF-16 units: 2 cuts the surrogate pair.
        assert_eq!(
            dec(V3, "2:4😀".as_bytes(), false),
            Err(DecodeError::BadLength)
        );
        assert_eq!(
            dec(V3, "4:4😀".as_bytes(), false),
            Err(DecodeError::BadLength)
        );
        assert_eq!(dec(V3, "3:4😀".as_bytes(), false), Ok(vec![msg("😀")]));
        // Byte lengths are wrong: `4€` is 4 bytes but 2 units.
        assert_eq!(
            dec(V3, "4:4€".as_bytes(), false),
            Err(DecodeError::BadLength)
        );
        assert_eq!(dec(V3, "4:4€€€".as_bytes(), false), Ok(vec![msg("€€€")]));
    }

    #[test]
    fn v3_text_packet_errors() {
        assert_eq!(dec(V3, b"", false), Err(DecodeError::Empty));
        assert_eq!(
            dec(V3, b"1:9", false),
            Err(DecodeError::UnknownPacketType(b'9'))
        );
        assert_eq!(
            dec(V3, b"2:4a1:x", false),
            Err(DecodeError::UnknownPacketType(b'x'))
        );
        assert_eq!(dec(V3, b"1:b", false), Err(DecodeError::Empty));
        assert_eq!(
            dec(V3, b"7:b4!!!!!", false),
            Err(DecodeError::InvalidBase64)
        );
        assert_eq!(
            dec(V3, b"4:b2AA", false),
            Err(DecodeError::UnknownPacketType(b'2'))
        );
        assert_eq!(dec(V3, b"2:4\xff", false), Err(DecodeError::InvalidUtf8));
        // The v4 framing is not understood by v3.
        assert_eq!(dec(V3, b"4hello\x1e2", false), Err(DecodeError::BadLength));
    }

    /// The body lengths at which an encoding of `packets` may be cut and still be valid.
    fn packet_boundaries(framing: Framing, packets: &[Packet]) -> Vec<usize> {
        (1..=packets.len())
            .map(|n| encode(framing, &packets[..n]).body.len())
            .collect()
    }

    #[test]
    fn v3_text_truncations_all_fail() {
        let packets = [msg("héllo 😀"), bin(&[1, 2, 3]), Packet::Ping(Str::new())];
        let full = encode(Framing::V3Text, &packets).body;
        let boundaries = packet_boundaries(Framing::V3Text, &packets);
        for cut in (0..full.len()).filter(|c| !boundaries.contains(c)) {
            assert!(
                decode(V3, full.slice(..cut), false, 100).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(decode(V3, full, false, 100).as_deref(), Ok(&packets[..]));
    }

    // ---- v3 XHR2 binary ----

    #[test]
    fn v3_binary_encode() {
        let p = encode(Framing::V3Binary, &[msg("€"), bin(&[1, 2, 3, 4])]);
        assert!(p.binary);
        // The text length counts UTF-8 bytes (`4€` is 4); the binary packet is the type byte 4
        // followed by the data (5 bytes).
        assert_eq!(
            &p.body[..],
            &[0, 4, 255, b'4', 0xe2, 0x82, 0xac, 1, 5, 255, 4, 1, 2, 3, 4]
        );
        let p = encode(Framing::V3Binary, &[msg("0123456789"), Packet::Noop]);
        let mut expected = vec![0, 1, 1, 255];
        expected.extend_from_slice(b"40123456789");
        expected.extend_from_slice(&[0, 1, 255, b'6']);
        assert_eq!(&p.body[..], &expected[..]);
        let big = vec![7u8; 1233];
        let p = encode(Framing::V3Binary, &[Packet::Binary(big.clone().into())]);
        assert_eq!(&p.body[..6], &[1, 1, 2, 3, 4, 255]);
        assert_eq!(p.body[6], 4);
        assert_eq!(&p.body[7..], &big[..]);
    }

    #[test]
    fn v3_binary_text_lengths_count_utf8_bytes() {
        for (s, len) in [("😀", [5]), ("你好", [7]), ("é", [3]), ("a", [2])] {
            let p = encode(
                Framing::V3Binary,
                &[Packet::Message(Str::from(s.to_string()))],
            );
            let mut expected = vec![0];
            expected.extend_from_slice(&len);
            expected.push(255);
            expected.push(b'4');
            expected.extend_from_slice(s.as_bytes());
            assert_eq!(&p.body[..], &expected[..], "{s}");
            assert_eq!(
                decode(V3, p.body, true, 10),
                Ok(vec![Packet::Message(Str::from(s.to_string()))])
            );
        }
        // A UTF-16 count (`4😀` is 3 units) cuts the character: the packet is not UTF-8.
        let mut body = vec![0, 3, 255, b'4'];
        body.extend_from_slice("😀".as_bytes());
        assert!(decode(V3, body.into(), true, 10).is_err());
    }

    #[test]
    fn v3_binary_decode_mixed() {
        let mut body = vec![0, 6, 255];
        body.extend_from_slice(b"4hello");
        body.extend_from_slice(&[1, 4, 255, 4, 0, 255, 9]);
        body.extend_from_slice(&[0, 1, 255, b'2']);
        body.extend_from_slice(&[1, 1, 255, 4]);
        body.extend_from_slice(&[0, 9, 255]);
        body.extend_from_slice(b"b4AQIDBA=");
        assert_eq!(
            decode(V3, body.into(), true, 100),
            Ok(vec![
                msg("hello"),
                bin(&[0, 255, 9]),
                Packet::Ping(Str::new()),
                bin(&[]),
                bin(&[1, 2, 3, 4]),
            ])
        );
    }

    #[test]
    fn v3_binary_round_trip() {
        let packets = vec![
            Packet::Open(Str::from_static(r#"{"sid":"x"}"#)),
            msg("€ 😀 你好"),
            bin(&[0, 255, 1, 4]),
            Packet::Pong(Str::from_static("probe")),
            Packet::Binary(vec![0xab; 300].into()),
            msg(""),
            Packet::Close,
            Packet::Noop,
        ];
        let framing = framing_for(V3, false, &packets);
        assert_eq!(framing, Framing::V3Binary);
        let p = encode(framing, &packets);
        assert!(p.binary);
        assert_eq!(decode(V3, p.body.clone(), true, 100), Ok(packets.clone()));
        // Every prefix that does not end on a packet boundary is malformed.
        let boundaries = packet_boundaries(framing, &packets);
        for cut in (0..p.body.len()).filter(|c| !boundaries.contains(c)) {
            assert!(
                decode(V3, p.body.slice(..cut), true, 100).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn v3_binary_decode_is_zero_copy() {
        let body = Bytes::from(vec![0, 3, 255, b'4', b'h', b'i', 1, 3, 255, 4, 8, 9]);
        let base = body.as_ptr() as usize;
        let packets = decode(V3, body, true, 10).unwrap();
        let Packet::Message(text) = &packets[0] else {
            panic!()
        };
        let Packet::Binary(data) = &packets[1] else {
            panic!()
        };
        assert_eq!(text.as_bytes().as_ptr() as usize - base, 4);
        assert_eq!(data.as_ptr() as usize - base, 10);
    }

    #[test]
    fn v3_binary_malformed() {
        let bad: [(&[u8], DecodeError); 14] = [
            (&[2, 1, 255, b'6'], DecodeError::BadLength),
            (&[0xff], DecodeError::BadLength),
            (&[0], DecodeError::BadLength),
            (&[0, 1], DecodeError::BadLength),
            (&[0, 255, b'6'], DecodeError::BadLength),
            (&[0, 0, 255], DecodeError::BadLength),
            (&[0, 0, 255, b'6'], DecodeError::BadLength),
            (&[0, 10, 255, b'6'], DecodeError::BadLength),
            (&[0, b'1', 255, b'6'], DecodeError::BadLength),
            (&[0, 2, 255, b'6'], DecodeError::BadLength),
            (
                &[1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 255, 4],
                DecodeError::BadLength,
            ),
            (&[1, 2, 255, 3, 0], DecodeError::UnknownPacketType(3)),
            (&[0, 2, 255, b'4', 0xff], DecodeError::InvalidUtf8),
            (&[0, 1, 255, b'8'], DecodeError::UnknownPacketType(b'8')),
        ];
        for (body, err) in bad {
            assert_eq!(
                decode(V3, Bytes::from_static(body), true, 10),
                Err(err),
                "{body:?}"
            );
        }
        assert_eq!(dec(V3, b"", true), Err(DecodeError::Empty));
    }

    #[test]
    fn v3_binary_body_flag_selects_the_framing() {
        // The same text framing sent as octet-stream is not XHR2 framing.
        assert_eq!(dec(V3, b"6:4hello", true), Err(DecodeError::BadLength));
        assert_eq!(
            dec(V3, &[0, 2, 255, b'4', b'a'], false),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            dec(V3, &[0, 2, 9, b'4', b'a'], false),
            Err(DecodeError::BadLength)
        );
    }

    // ---- limits ----

    #[test]
    fn max_packets_limit() {
        let packets = vec![msg("a"), bin(&[1]), Packet::Noop];
        for (version, framing, binary_body) in [
            (V4, Framing::V4, false),
            (V3, Framing::V3Text, false),
            (V3, Framing::V3Binary, true),
        ] {
            let body = encode(framing, &packets).body;
            assert_eq!(
                decode(version, body.clone(), binary_body, 3),
                Ok(packets.clone())
            );
            assert_eq!(
                decode(version, body.clone(), binary_body, 2),
                Err(DecodeError::TooLarge)
            );
            assert_eq!(
                decode(version, body, binary_body, 0),
                Err(DecodeError::TooLarge)
            );
        }
    }

    #[test]
    fn empty_body_is_an_error_everywhere() {
        for v in [V3, V4] {
            for binary_body in [false, true] {
                for max in [0, 10] {
                    assert_eq!(
                        decode(v, Bytes::new(), binary_body, max),
                        Err(DecodeError::Empty)
                    );
                }
            }
        }
    }

    // ---- JSONP ----

    /// The string literal inside `___eio[n]("...");`, read back as a JSON string (every escape
    /// [`jsonp_wrap`] writes is valid JSON too).
    fn unwrap_jsonp(index: u32, js: &str) -> String {
        let head = format!("___eio[{index}](");
        let inner = js
            .strip_prefix(&head)
            .and_then(|s| s.strip_suffix(");"))
            .unwrap_or_else(|| panic!("bad wrapper: {js}"));
        serde_json::from_str(inner).unwrap()
    }

    #[test]
    fn jsonp_wrap_simple() {
        assert_eq!(jsonp_wrap(0, "6:4hello"), r#"___eio[0]("6:4hello");"#);
        assert_eq!(jsonp_wrap(4294967295, ""), r#"___eio[4294967295]("");"#);
    }

    #[test]
    fn jsonp_wrap_escapes() {
        assert_eq!(jsonp_wrap(3, r#"9:4"a\b""#), r#"___eio[3]("9:4\"a\\b\"");"#);
        assert_eq!(
            jsonp_wrap(1, "4:4a\nb\r\t\u{0}\u{1e}\u{7f}\u{85}"),
            r#"___eio[1]("4:4a\u000ab\u000d\u0009\u0000\u001e\u007f\u0085");"#
        );
        assert_eq!(
            jsonp_wrap(1, "3:4\u{2028}\u{2029}"),
            r#"___eio[1]("3:4\u2028\u2029");"#
        );
        assert_eq!(
            jsonp_wrap(2, "18:4</script><!--x"),
            r#"___eio[2]("18:4\u003c/script>\u003c!--x");"#
        );
        // Other non-ASCII text is written as is.
        assert_eq!(jsonp_wrap(5, "5:4€😀你"), "___eio[5](\"5:4€😀你\");");
    }

    #[test]
    fn jsonp_wrap_never_closes_early() {
        let nasty = "1:4\"); alert(1); (\"\\\"</SCRIPT></script>\n\u{2028}\u{2029}\u{0}\u{1f}😀\\";
        let js = jsonp_wrap(7, nasty);
        assert!(!js.contains('<'));
        assert!(!js.contains('\n'));
        assert!(!js.contains('\u{2028}') && !js.contains('\u{2029}'));
        // The only unescaped quotes are the two delimiters.
        let inner = &js["___eio[7](\"".len()..js.len() - "\");".len()];
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '"', "unescaped quote in {js}");
            escaped = !escaped && c == '\\';
        }
        assert!(!escaped);
        assert_eq!(unwrap_jsonp(7, &js), nasty);
    }

    /// What socket.io-client 2.x does to a payload before putting it in the form.
    fn client_escape(payload: &str) -> String {
        payload.replace("\\n", "\\\n").replace('\n', "\\n")
    }

    #[test]
    fn jsonp_form_basic() {
        assert_eq!(
            decode_jsonp_form(b"d=6%3A4hello").as_deref(),
            Ok(&b"6:4hello"[..])
        );
        assert_eq!(
            decode_jsonp_form(b"d=6:4hello").as_deref(),
            Ok(&b"6:4hello"[..])
        );
        assert_eq!(
            decode_jsonp_form(b"d=12%3A4hello+world%2b").as_deref(),
            Ok(&b"12:4hello world+"[..])
        );
        assert_eq!(
            decode_jsonp_form(b"x=1&y&d=2%3A4%E2%82%AC&d=other").as_deref(),
            Ok("2:4€".as_bytes())
        );
        assert_eq!(decode_jsonp_form(b"%64=1%3A6").as_deref(), Ok(&b"1:6"[..]));
        assert_eq!(decode_jsonp_form(b"d=").as_deref(), Ok(&b""[..]));
        assert_eq!(decode_jsonp_form(b"d").as_deref(), Ok(&b""[..]));
        // A bad escape in another field is ignored.
        assert_eq!(
            decode_jsonp_form(b"%zz=%q&d=1%3A6").as_deref(),
            Ok(&b"1:6"[..])
        );
        // The result decodes as a v3 payload.
        let body = decode_jsonp_form(b"d=6%3A4hello2%3A4%E2%82%AC").unwrap();
        assert_eq!(
            decode(V3, body, false, 10),
            Ok(vec![msg("hello"), msg("€")])
        );
    }

    #[test]
    fn jsonp_form_errors() {
        for body in [&b""[..], b"x=1", b"dd=1:6", b"D=1:6", b"xd=1:6&e=2", b"&&"] {
            assert_eq!(
                decode_jsonp_form(body),
                Err(DecodeError::BadJsonp),
                "{body:?}"
            );
        }
        for body in [&b"d=%"[..], b"d=%4", b"d=%zz", b"d=1%3A%g6", b"d=%%41"] {
            assert_eq!(
                decode_jsonp_form(body),
                Err(DecodeError::BadJsonp),
                "{body:?}"
            );
        }
        assert_eq!(
            decode_jsonp_form(b"d=2%3A4%FF"),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            decode_jsonp_form(b"d=%E2%82"),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn jsonp_form_newline_escapes() {
        // A lone backslash-n is a newline; backslash-backslash-n is backslash-n.
        assert_eq!(
            decode_jsonp_form(br"d=4%3A4a%5Cnb").as_deref(),
            Ok(&b"4:4a\nb"[..])
        );
        assert_eq!(
            decode_jsonp_form(br"d=5%3A4a%5C%5Cnb").as_deref(),
            Ok(&b"5:4a\\nb"[..])
        );
        // Other backslashes are kept.
        assert_eq!(
            decode_jsonp_form(br"d=5%3A4a%5Ctb%5C").as_deref(),
            Ok(&b"5:4a\\tb\\"[..])
        );
        // One left-to-right pass: backslash, backslash, backslash, n is a backslash then an
        // escaped backslash-n, which is what the client makes of a backslash before `\n`.
        assert_eq!(
            decode_jsonp_form(br"d=%5C%5C%5Cn").as_deref(),
            Ok(&b"\\\\n"[..])
        );
        assert_eq!(client_escape("\\\\n"), "\\\\\\n");
    }

    #[test]
    fn jsonp_form_round_trips_client_escaping() {
        for payload in [
            "6:4hello",
            "4:4a\nb",
            "5:4a\\nb",
            "8:4a\n\nb\n",
            "7:4\\\\n\\n",
            "6:4\\\\\\",
            "9:4€ 😀+&=%\n",
            "2:4\n3:4\\n",
            // Left as they are by one form encoder and escaped by another.
            "5:4*~!",
        ] {
            let form = format!(
                "j=1&d={}",
                form_urlencoded::byte_serialize(client_escape(payload).as_bytes())
                    .collect::<String>()
            );
            assert_eq!(
                decode_jsonp_form(form.as_bytes()).as_deref(),
                Ok(payload.as_bytes()),
                "{payload:?} sent as {form}"
            );
        }
    }

    // ---- robustness ----

    /// Bytes that mean something to one of the decoders, and some that do not.
    const INTERESTING: &[&[u8]] = &[
        b"0",
        b"1",
        b"2",
        b"3",
        b"4",
        b"5",
        b"6",
        b"7",
        b"9",
        b":",
        b"b",
        b"b4",
        b"\x1e",
        b"\x00",
        b"\x01",
        b"\x04",
        b"\x09",
        b"\x0a",
        b"\xff",
        b"=",
        b"A",
        b"/",
        b"+",
        b"%",
        b"%3A",
        b"%5C",
        b"\\",
        b"\\n",
        b"&",
        b"d=",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"\xe2\x82",
        b"\xf0\x9f",
        b"\x80",
        b"99999999999999999999",
    ];

    fn random_body(rng: &mut StdRng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.random_range(0..24) {
            if rng.random_range(0..3) == 0 {
                out.push(rng.random::<u8>());
            } else {
                out.extend_from_slice(INTERESTING[rng.random_range(0..INTERESTING.len())]);
            }
        }
        out
    }

    /// Valid bodies of every framing, to be cut and mutated.
    fn valid_bodies() -> Vec<Vec<u8>> {
        let packets = vec![
            msg("hello"),
            msg("€ 😀 你好"),
            bin(&[0, 1, 255, 4]),
            Packet::Ping(Str::from_static("probe")),
            Packet::Open(Str::from_static(r#"{"sid":"a"}"#)),
            Packet::Noop,
            bin(&[]),
        ];
        let mut out = Vec::new();
        for framing in [Framing::V4, Framing::V3Text, Framing::V3Binary] {
            out.push(encode(framing, &packets).body.to_vec());
            out.push(encode(framing, &packets[1..3]).body.to_vec());
        }
        out
    }

    /// Runs every decoder on `body`; for each payload decode that succeeds, checks that
    /// re-encoding it gives the same packets back.
    fn decode_everything(body: &[u8]) {
        let bytes = Bytes::copy_from_slice(body);
        for (version, binary_body) in [(V4, false), (V4, true), (V3, false), (V3, true)] {
            for max in [0, 1, 3, usize::MAX] {
                let Ok(packets) = decode(version, bytes.clone(), binary_body, max) else {
                    continue;
                };
                assert!(!packets.is_empty() && packets.len() <= max);
                let framing = match (version, binary_body) {
                    (V4, _) => Framing::V4,
                    (V3, false) => Framing::V3Text,
                    (V3, true) => Framing::V3Binary,
                };
                let again = encode(framing, &packets).body;
                assert_eq!(
                    decode(version, again, binary_body, max),
                    Ok(packets),
                    "{body:?}"
                );
            }
        }
        for version in [V3, V4] {
            let text = Str::from(String::from_utf8_lossy(body).into_owned());
            let _ = Packet::decode_text(version, text);
            if let Ok(text) = Str::from_utf8(bytes.clone()) {
                let _ = Packet::decode_text(version, text);
            }
            let _ = Packet::decode_binary(version, bytes.clone());
        }
        if let Ok(payload) = decode_jsonp_form(body) {
            assert!(std::str::from_utf8(&payload).is_ok());
            let _ = decode(V3, payload, false, 100);
        }
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        // Seeded, so that failures reproduce.
        let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            decode_everything(&random_body(&mut rng));
        }
        for body in valid_bodies() {
            for cut in 0..=body.len() {
                decode_everything(&body[..cut]);
                decode_everything(&body[cut..]);
            }
            for _ in 0..2_000 {
                let mut mutated = body.clone();
                for _ in 0..1 + rng.random_range(0..3) {
                    let i = rng.random_range(0..mutated.len());
                    match rng.random_range(0..3) {
                        0 => mutated[i] = rng.random::<u8>(),
                        1 => {
                            mutated.remove(i);
                        }
                        _ => {
                            let piece = INTERESTING[rng.random_range(0..INTERESTING.len())];
                            mutated.splice(i..i, piece.iter().copied());
                        }
                    }
                    if mutated.is_empty() {
                        break;
                    }
                }
                decode_everything(&mutated);
            }
        }
    }
}
