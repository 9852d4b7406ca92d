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

use crate::{DecodeError, Packet, ProtocolVersion};
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
    todo!()
}

/// Encodes `packets` for a polling GET response with the given framing.
pub fn encode(framing: Framing, packets: &[Packet]) -> EncodedPayload {
    todo!()
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
pub fn decode(
    version: ProtocolVersion,
    body: Bytes,
    binary_body: bool,
    max_packets: usize,
) -> Result<Vec<Packet>, DecodeError> {
    todo!()
}

/// Wraps an encoded v3 text payload for a JSONP GET response:
/// `___eio[<index>]("<payload escaped as a JS string>");`.
///
/// The payload is escaped so that it is a valid JavaScript double-quoted string literal and can
/// never close the `<script>` element or the string early: `\` and `"` are escaped, control
/// characters and U+2028/U+2029 become `\uXXXX`, and `<` is written `\u003c`.
pub fn jsonp_wrap(index: u32, payload: &str) -> String {
    todo!()
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
pub fn decode_jsonp_form(body: &[u8]) -> Result<Bytes, DecodeError> {
    todo!()
}
