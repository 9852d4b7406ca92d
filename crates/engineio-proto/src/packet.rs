//! One Engine.IO packet, and its WebSocket frame forms.
//!
//! Text form: the packet type digit followed by the data, e.g. `"4hello"`, `"2probe"`, `"6"`.
//! Binary data over WebSocket is a binary frame: the raw bytes in v4, the type byte `4` followed by
//! the bytes in v3.

use crate::{DecodeError, ProtocolVersion, Str};
use bytes::Bytes;

/// The packet type, the first character of a text packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: the handshake.
    Open,
    /// `1`: the transport is closing.
    Close,
    /// `2`: heartbeat (or `2probe` during an upgrade).
    Ping,
    /// `3`: heartbeat answer (or `3probe`).
    Pong,
    /// `4`: a message for the layer above.
    Message,
    /// `5`: completes the upgrade to WebSocket.
    Upgrade,
    /// `6`: does nothing; flushes a pending poll during an upgrade.
    Noop,
}

impl PacketType {
    /// The type from its wire digit (`b'0'`..=`b'6'`).
    pub fn from_digit(c: u8) -> Option<Self> {
        todo!()
    }

    /// The wire digit (`b'0'`..=`b'6'`).
    pub fn digit(self) -> u8 {
        todo!()
    }
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0{json}`: the handshake JSON.
    Open(Str),
    /// `1`.
    Close,
    /// `2` with optional data (`"probe"` during an upgrade, otherwise empty).
    Ping(Str),
    /// `3` with optional data (`"probe"` answers a probe ping).
    Pong(Str),
    /// `4<text>`: a text message.
    Message(Str),
    /// Binary message: a binary WebSocket frame, or `b<base64>` in a polling payload.
    Binary(Bytes),
    /// `5`.
    Upgrade,
    /// `6`.
    Noop,
}

impl Packet {
    /// The type of this packet ([`Packet::Binary`] is a [`PacketType::Message`]).
    pub fn packet_type(&self) -> PacketType {
        todo!()
    }

    /// Decodes a text packet: a WebSocket text frame, or one packet cut from a polling payload.
    ///
    /// The data after the type digit is kept as a slice of `text` (no copy). A `b`-prefixed packet
    /// (base64 binary, as polling sends it) is also accepted here: `b<base64>` in v4 and
    /// `b4<base64>` in v3, decoded to [`Packet::Binary`]; `version` tells which form to expect.
    /// Errors: [`DecodeError::Empty`], [`DecodeError::UnknownPacketType`],
    /// [`DecodeError::InvalidBase64`].
    pub fn decode_text(version: ProtocolVersion, text: Str) -> Result<Packet, DecodeError> {
        todo!()
    }

    /// Decodes a binary WebSocket frame: in v4 the whole frame is a [`Packet::Binary`]; in v3 the
    /// first byte is the packet type (its raw value 4, not the digit) and the rest the data.
    pub fn decode_binary(version: ProtocolVersion, frame: Bytes) -> Result<Packet, DecodeError> {
        todo!()
    }

    /// Appends the text form to `out` (`"4hello"`, `"3probe"`, `"6"`, `"0{...}"`). A
    /// [`Packet::Binary`] is written as base64: `b<base64>` for v4, `b4<base64>` for v3.
    pub fn encode_text(&self, version: ProtocolVersion, out: &mut String) {
        todo!()
    }

    /// The text form as a new [`Str`] (see [`Packet::encode_text`]).
    pub fn to_text(&self, version: ProtocolVersion) -> Str {
        let mut s = String::new();
        self.encode_text(version, &mut s);
        Str::from(s)
    }

    /// The binary WebSocket frame for binary data: `data` itself for v4, the byte `4` followed by
    /// `data` for v3.
    pub fn binary_frame(version: ProtocolVersion, data: &Bytes) -> Bytes {
        todo!()
    }
}
