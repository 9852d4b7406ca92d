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
        match c {
            b'0' => Some(Self::Open),
            b'1' => Some(Self::Close),
            b'2' => Some(Self::Ping),
            b'3' => Some(Self::Pong),
            b'4' => Some(Self::Message),
            b'5' => Some(Self::Upgrade),
            b'6' => Some(Self::Noop),
            _ => None,
        }
    }

    /// The wire digit (`b'0'`..=`b'6'`).
    pub fn digit(self) -> u8 {
        match self {
            Self::Open => b'0',
            Self::Close => b'1',
            Self::Ping => b'2',
            Self::Pong => b'3',
            Self::Message => b'4',
            Self::Upgrade => b'5',
            Self::Noop => b'6',
        }
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

/// The raw value of the message type, the first byte of a v3 binary frame.
const V3_BINARY_MESSAGE_TYPE: u8 = 4;

/// Standard-alphabet base64. Encoding always pads; decoding accepts the padding or its absence
/// (Node's `Buffer.from(s, "base64")`, which the reference server uses, accepts both) but
/// nothing else: no whitespace, no URL-safe alphabet, no non-zero trailing bits.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Appends the base64 form of `data` to `out`.
pub(crate) fn base64_encode_into(data: &[u8], out: &mut String) {
    use base64::Engine as _;
    BASE64.encode_string(data, out);
}

/// Decodes base64 text (see [`BASE64`]).
pub(crate) fn base64_decode(text: &str) -> Result<Bytes, DecodeError> {
    use base64::Engine as _;
    BASE64
        .decode(text)
        .map(Bytes::from)
        .map_err(|_| DecodeError::InvalidBase64)
}

impl Packet {
    /// The type of this packet ([`Packet::Binary`] is a [`PacketType::Message`]).
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Open(_) => PacketType::Open,
            Self::Close => PacketType::Close,
            Self::Ping(_) => PacketType::Ping,
            Self::Pong(_) => PacketType::Pong,
            Self::Message(_) | Self::Binary(_) => PacketType::Message,
            Self::Upgrade => PacketType::Upgrade,
            Self::Noop => PacketType::Noop,
        }
    }

    /// Decodes a text packet: a WebSocket text frame, or one packet cut from a polling payload.
    ///
    /// The data after the type digit is kept as a slice of `text` (no copy). A `b`-prefixed packet
    /// (base64 binary, as polling sends it) is also accepted here: `b<base64>` in v4 and
    /// `b4<base64>` in v3, decoded to [`Packet::Binary`]; `version` tells which form to expect.
    /// Errors: [`DecodeError::Empty`], [`DecodeError::UnknownPacketType`],
    /// [`DecodeError::InvalidBase64`].
    ///
    /// Details of this implementation:
    /// - data after `1`, `5` or `6` is ignored (as the reference server does);
    /// - base64 is accepted with or without its `=` padding;
    /// - in v3, a lone `b` is [`DecodeError::Empty`] (no type after the marker), and `b` followed
    ///   by anything but `4` is [`DecodeError::UnknownPacketType`] with that byte: only messages
    ///   can carry binary data.
    pub fn decode_text(version: ProtocolVersion, text: Str) -> Result<Packet, DecodeError> {
        let bytes = text.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(DecodeError::Empty);
        };
        if first == b'b' {
            let rest = text.get(1..).unwrap_or_default();
            let b64 = match version {
                ProtocolVersion::V4 => rest,
                ProtocolVersion::V3 => match rest.as_bytes().first() {
                    None => return Err(DecodeError::Empty),
                    Some(&b'4') => rest.get(1..).unwrap_or_default(),
                    Some(&other) => return Err(DecodeError::UnknownPacketType(other)),
                },
            };
            return base64_decode(b64).map(Packet::Binary);
        }
        let ty = PacketType::from_digit(first).ok_or(DecodeError::UnknownPacketType(first))?;
        // The type digit is ASCII, so byte 1 is always a character boundary.
        let data = || text.slice(1..bytes.len()).ok_or(DecodeError::InvalidUtf8);
        Ok(match ty {
            PacketType::Open => Packet::Open(data()?),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(data()?),
            PacketType::Pong => Packet::Pong(data()?),
            PacketType::Message => Packet::Message(data()?),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        })
    }

    /// Decodes a binary WebSocket frame: in v4 the whole frame is a [`Packet::Binary`]; in v3 the
    /// first byte is the packet type (its raw value 4, not the digit) and the rest the data.
    ///
    /// In v4 an empty frame is an empty binary message. In v3 an empty frame is
    /// [`DecodeError::Empty`] and a first byte other than 4 is [`DecodeError::UnknownPacketType`]
    /// (only messages carry binary data).
    pub fn decode_binary(version: ProtocolVersion, frame: Bytes) -> Result<Packet, DecodeError> {
        match version {
            ProtocolVersion::V4 => Ok(Packet::Binary(frame)),
            ProtocolVersion::V3 => match frame.first() {
                None => Err(DecodeError::Empty),
                Some(&V3_BINARY_MESSAGE_TYPE) => Ok(Packet::Binary(frame.slice(1..))),
                Some(&other) => Err(DecodeError::UnknownPacketType(other)),
            },
        }
    }

    /// Appends the text form to `out` (`"4hello"`, `"3probe"`, `"6"`, `"0{...}"`). A
    /// [`Packet::Binary`] is written as base64: `b<base64>` for v4, `b4<base64>` for v3.
    pub fn encode_text(&self, version: ProtocolVersion, out: &mut String) {
        let (ty, data) = match self {
            Self::Open(s) | Self::Ping(s) | Self::Pong(s) | Self::Message(s) => {
                (self.packet_type(), s.as_str())
            }
            Self::Close | Self::Upgrade | Self::Noop => (self.packet_type(), ""),
            Self::Binary(bytes) => {
                out.push('b');
                if version == ProtocolVersion::V3 {
                    out.push('4');
                }
                base64_encode_into(bytes, out);
                return;
            }
        };
        out.push(char::from(ty.digit()));
        out.push_str(data);
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
        match version {
            ProtocolVersion::V4 => data.clone(),
            ProtocolVersion::V3 => {
                let mut frame = Vec::with_capacity(data.len() + 1);
                frame.push(V3_BINARY_MESSAGE_TYPE);
                frame.extend_from_slice(data);
                Bytes::from(frame)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProtocolVersion::{V3, V4};

    const VERSIONS: [ProtocolVersion; 2] = [V3, V4];

    fn text(v: ProtocolVersion, s: &'static str) -> Result<Packet, DecodeError> {
        Packet::decode_text(v, Str::from_static(s))
    }

    /// One packet of every kind, with the text form both versions share.
    fn every_text_packet() -> Vec<(Packet, &'static str)> {
        vec![
            (
                Packet::Open(Str::from_static(r#"{"sid":"abc","upgrades":[]}"#)),
                r#"0{"sid":"abc","upgrades":[]}"#,
            ),
            (Packet::Close, "1"),
            (Packet::Ping(Str::new()), "2"),
            (Packet::Ping(Str::from_static("probe")), "2probe"),
            (Packet::Pong(Str::new()), "3"),
            (Packet::Pong(Str::from_static("probe")), "3probe"),
            (Packet::Message(Str::new()), "4"),
            (Packet::Message(Str::from_static("hello")), "4hello"),
            (
                Packet::Message(Str::from_static("€ 😀 你好 \u{1e}\n\"")),
                "4€ 😀 你好 \u{1e}\n\"",
            ),
            (Packet::Message(Str::from_static("4")), "44"),
            (Packet::Message(Str::from_static("b4AQ==")), "4b4AQ=="),
            (Packet::Upgrade, "5"),
            (Packet::Noop, "6"),
        ]
    }

    #[test]
    fn packet_type_digits() {
        let all = [
            (PacketType::Open, b'0'),
            (PacketType::Close, b'1'),
            (PacketType::Ping, b'2'),
            (PacketType::Pong, b'3'),
            (PacketType::Message, b'4'),
            (PacketType::Upgrade, b'5'),
            (PacketType::Noop, b'6'),
        ];
        for (ty, d) in all {
            assert_eq!(ty.digit(), d);
            assert_eq!(PacketType::from_digit(d), Some(ty));
        }
        for c in (0..=u8::MAX).filter(|c| !(b'0'..=b'6').contains(c)) {
            assert_eq!(PacketType::from_digit(c), None, "{c}");
        }
    }

    #[test]
    fn packet_type_of_packets() {
        assert_eq!(Packet::Open(Str::new()).packet_type(), PacketType::Open);
        assert_eq!(Packet::Close.packet_type(), PacketType::Close);
        assert_eq!(Packet::Ping(Str::new()).packet_type(), PacketType::Ping);
        assert_eq!(Packet::Pong(Str::new()).packet_type(), PacketType::Pong);
        assert_eq!(
            Packet::Message(Str::new()).packet_type(),
            PacketType::Message
        );
        assert_eq!(
            Packet::Binary(Bytes::new()).packet_type(),
            PacketType::Message
        );
        assert_eq!(Packet::Upgrade.packet_type(), PacketType::Upgrade);
        assert_eq!(Packet::Noop.packet_type(), PacketType::Noop);
    }

    #[test]
    fn text_round_trip_every_type_both_versions() {
        for v in VERSIONS {
            for (packet, wire) in every_text_packet() {
                assert_eq!(packet.to_text(v).as_str(), wire, "{v:?} {packet:?}");
                assert_eq!(
                    Packet::decode_text(v, Str::from_static(wire)),
                    Ok(packet.clone()),
                    "{v:?} {wire:?}"
                );
            }
        }
    }

    #[test]
    fn encode_text_appends() {
        let mut out = String::from("x");
        Packet::Message(Str::from_static("a")).encode_text(V4, &mut out);
        Packet::Noop.encode_text(V4, &mut out);
        Packet::Binary(Bytes::from_static(&[1])).encode_text(V3, &mut out);
        assert_eq!(out, "x4a6b4AQ==");
    }

    #[test]
    fn binary_text_forms() {
        let data = Bytes::from_static(&[1, 2, 3, 4]);
        let packet = Packet::Binary(data.clone());
        assert_eq!(packet.to_text(V4).as_str(), "bAQIDBA==");
        assert_eq!(packet.to_text(V3).as_str(), "b4AQIDBA==");
        assert_eq!(text(V4, "bAQIDBA=="), Ok(packet.clone()));
        assert_eq!(text(V3, "b4AQIDBA=="), Ok(packet.clone()));
        // Padding may be left out.
        assert_eq!(text(V4, "bAQIDBA"), Ok(packet.clone()));
        assert_eq!(text(V3, "b4AQIDBA"), Ok(packet));
        // Empty binary data.
        assert_eq!(Packet::Binary(Bytes::new()).to_text(V4).as_str(), "b");
        assert_eq!(Packet::Binary(Bytes::new()).to_text(V3).as_str(), "b4");
        assert_eq!(text(V4, "b"), Ok(Packet::Binary(Bytes::new())));
        assert_eq!(text(V3, "b4"), Ok(Packet::Binary(Bytes::new())));
        // Every byte value survives.
        let all: Bytes = (0..=u8::MAX).collect::<Vec<u8>>().into();
        for v in VERSIONS {
            let packet = Packet::Binary(all.clone());
            assert_eq!(Packet::decode_text(v, packet.to_text(v)), Ok(packet));
        }
    }

    #[test]
    fn binary_text_errors() {
        for s in [
            "b!!!!",
            "bAQIDBA=x",
            "bA",
            "bAQ=A",
            "bAQ==\n",
            "b-_-_",
            "bAQIDBA===",
        ] {
            assert_eq!(text(V4, s), Err(DecodeError::InvalidBase64), "{s}");
        }
        for s in ["b4!!!!", "b4A", "b4AQ IDBA=="] {
            assert_eq!(text(V3, s), Err(DecodeError::InvalidBase64), "{s}");
        }
        // v3 needs the type after `b`, and only messages carry binary data.
        assert_eq!(text(V3, "b"), Err(DecodeError::Empty));
        assert_eq!(
            text(V3, "b2AQ=="),
            Err(DecodeError::UnknownPacketType(b'2'))
        );
        assert_eq!(
            text(V3, "bAQIDBA=="),
            Err(DecodeError::UnknownPacketType(b'A'))
        );
        // The v3 form is not valid base64 for a v4 client (9 characters).
        assert_eq!(text(V4, "b4AQIDBA=="), Err(DecodeError::InvalidBase64));
    }

    #[test]
    fn text_errors() {
        for v in VERSIONS {
            assert_eq!(text(v, ""), Err(DecodeError::Empty));
            assert_eq!(text(v, "7"), Err(DecodeError::UnknownPacketType(b'7')));
            assert_eq!(text(v, "9hello"), Err(DecodeError::UnknownPacketType(b'9')));
            assert_eq!(text(v, "x"), Err(DecodeError::UnknownPacketType(b'x')));
            assert_eq!(text(v, " 4a"), Err(DecodeError::UnknownPacketType(b' ')));
            assert_eq!(text(v, "B4AQ=="), Err(DecodeError::UnknownPacketType(b'B')));
            assert_eq!(text(v, "€"), Err(DecodeError::UnknownPacketType(0xe2)));
        }
    }

    #[test]
    fn data_of_dataless_packets_is_ignored() {
        for v in VERSIONS {
            assert_eq!(text(v, "1bye"), Ok(Packet::Close));
            assert_eq!(text(v, "5x"), Ok(Packet::Upgrade));
            assert_eq!(text(v, "6€"), Ok(Packet::Noop));
        }
    }

    #[test]
    fn decode_text_is_zero_copy() {
        let input = Str::from(String::from("4hello €"));
        let base = input.as_bytes().as_ptr() as usize;
        let Ok(Packet::Message(data)) = Packet::decode_text(V4, input.clone()) else {
            panic!("not a message");
        };
        assert_eq!(data.as_str(), "hello €");
        assert_eq!(data.as_bytes().as_ptr() as usize, base + 1);
    }

    #[test]
    fn binary_frames() {
        let data = Bytes::from_static(&[0, 1, 2, 255]);
        assert_eq!(Packet::binary_frame(V4, &data), data);
        assert_eq!(&Packet::binary_frame(V3, &data)[..], &[4, 0, 1, 2, 255]);
        assert_eq!(&Packet::binary_frame(V3, &Bytes::new())[..], &[4]);
        for v in VERSIONS {
            let frame = Packet::binary_frame(v, &data);
            assert_eq!(
                Packet::decode_binary(v, frame),
                Ok(Packet::Binary(data.clone()))
            );
            let frame = Packet::binary_frame(v, &Bytes::new());
            assert_eq!(
                Packet::decode_binary(v, frame),
                Ok(Packet::Binary(Bytes::new()))
            );
        }
    }

    #[test]
    fn decode_binary_frames() {
        // v4: the frame is the data, whatever its first byte.
        for frame in [&[][..], &[4, 1], &[0], b"4a"] {
            assert_eq!(
                Packet::decode_binary(V4, Bytes::copy_from_slice(frame)),
                Ok(Packet::Binary(Bytes::copy_from_slice(frame)))
            );
        }
        // v3: raw type byte 4 first.
        assert_eq!(
            Packet::decode_binary(V3, Bytes::from_static(&[4, 1, 2, 3])),
            Ok(Packet::Binary(Bytes::from_static(&[1, 2, 3])))
        );
        assert_eq!(
            Packet::decode_binary(V3, Bytes::new()),
            Err(DecodeError::Empty)
        );
        assert_eq!(
            Packet::decode_binary(V3, Bytes::from_static(&[2, 1])),
            Err(DecodeError::UnknownPacketType(2))
        );
        assert_eq!(
            Packet::decode_binary(V3, Bytes::from_static(b"4abc")),
            Err(DecodeError::UnknownPacketType(b'4'))
        );
        assert_eq!(
            Packet::decode_binary(V3, Bytes::from_static(&[255])),
            Err(DecodeError::UnknownPacketType(255))
        );
    }

    #[test]
    fn decode_binary_v3_shares_the_frame() {
        let frame = Bytes::from(vec![4u8, 9, 8, 7]);
        let base = frame.as_ptr() as usize;
        let Ok(Packet::Binary(data)) = Packet::decode_binary(V3, frame) else {
            panic!("not binary");
        };
        assert_eq!(data.as_ptr() as usize, base + 1);
    }
}
