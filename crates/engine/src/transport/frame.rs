//! WebSocket frames the server writes itself (RFC 6455 section 5.2): one final frame per
//! Engine.IO packet, unmasked, as a server sends them. Reading, the handshake and control
//! frames stay with tungstenite; see [`super::websocket`] for why writing does not.

use bytes::Bytes;
use socketlet_engineio_proto::{Packet, ProtocolVersion, Str};
use std::io::IoSlice;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const FIN: u8 = 0x80;
/// Engine.IO v3's prefix of a binary message on WebSocket.
const V3_BINARY_PREFIX: &[u8] = &[4];

/// The header of one final, unmasked frame: 2, 4 or 10 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    fn new(opcode: u8, payload: usize) -> Header {
        let mut bytes = [0u8; 10];
        bytes[0] = FIN | opcode;
        let len = if payload < 126 {
            bytes[1] = payload as u8;
            2
        } else if let Ok(short) = u16::try_from(payload) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Header { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One packet as a frame in three parts (header, prefix, payload), so that a packet's text or
/// binary data is written from its own buffer, never copied (a broadcast shares one buffer
/// between all its receivers).
pub(crate) struct Parts<'a> {
    header: Header,
    prefix: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Parts<'a> {
    /// The frame of `packet`. Packets other than MESSAGE and binary (pings, NOOP, CLOSE) are
    /// encoded into `text`, which must outlive the parts.
    pub(crate) fn of(version: ProtocolVersion, packet: &'a Packet, text: &'a mut Str) -> Self {
        match packet {
            Packet::Message(data) => Parts::message(data.as_bytes()),
            Packet::Binary(data) => Parts::binary(version, data),
            other => {
                *text = other.to_text(version);
                Parts {
                    header: Header::new(TEXT, text.len()),
                    prefix: &[],
                    payload: text.as_bytes(),
                }
            }
        }
    }

    /// The frame of a MESSAGE packet: `4<text>`.
    pub(crate) fn message(text: &'a [u8]) -> Self {
        Parts {
            header: Header::new(TEXT, text.len() + 1),
            prefix: b"4",
            payload: text,
        }
    }

    /// The frame of a binary message.
    pub(crate) fn binary(version: ProtocolVersion, data: &'a Bytes) -> Self {
        let prefix = match version {
            ProtocolVersion::V4 => &[][..],
            ProtocolVersion::V3 => V3_BINARY_PREFIX,
        };
        Parts {
            header: Header::new(BINARY, prefix.len() + data.len()),
            prefix,
            payload: data,
        }
    }

    /// The whole frame's length.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.header.len) + self.prefix.len() + self.payload.len()
    }

    /// The three parts, for a vectored write.
    pub(crate) fn slices(&self) -> [IoSlice<'_>; 3] {
        [
            IoSlice::new(self.header.as_slice()),
            IoSlice::new(self.prefix),
            IoSlice::new(self.payload),
        ]
    }

    /// Appends the frame's bytes from offset `from` on (the part a short write left).
    pub(crate) fn copy_from(&self, from: usize, out: &mut impl bytes::BufMut) {
        let mut skip = from;
        for part in [self.header.as_slice(), self.prefix, self.payload] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            out.put_slice(&part[skip..]);
            skip = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    /// Parses `frame` with tungstenite's reader: header fields and payload.
    fn parse(frame: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(frame);
        let (header, len) = FrameHeader::parse(&mut cursor)
            .expect("valid header")
            .expect("complete header");
        let start = cursor.position() as usize;
        assert_eq!(frame.len() - start, len as usize, "payload length");
        (header, frame[start..].to_vec())
    }

    fn whole(parts: &Parts<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        parts.copy_from(0, &mut out);
        assert_eq!(out.len(), parts.len());
        out
    }

    #[test]
    fn every_length_class_reads_back() {
        // 7-bit, 16-bit and 64-bit lengths, at their edges.
        for len in [0usize, 124, 125, 126, 127, 65_534, 65_535, 65_536, 200_000] {
            let text = "x".repeat(len);
            let parts = Parts::message(text.as_bytes());
            let (header, payload) = parse(&whole(&parts));
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert_eq!(header.mask, None, "a server frame is not masked");
            assert_eq!(payload.len(), len + 1);
            assert_eq!(payload[0], b'4');
            assert!(payload[1..].iter().all(|&b| b == b'x'));
        }
    }

    #[test]
    fn binary_frames_per_generation() {
        let data = Bytes::from_static(&[0, 1, 255]);
        let (header, payload) = parse(&whole(&Parts::binary(ProtocolVersion::V4, &data)));
        assert_eq!(header.opcode, OpCode::Data(Data::Binary));
        assert_eq!(payload, [0, 1, 255]);
        let (_, payload) = parse(&whole(&Parts::binary(ProtocolVersion::V3, &data)));
        assert_eq!(payload, [4, 0, 1, 255]);
    }

    #[test]
    fn control_packets_are_text_frames() {
        let mut text = Str::new();
        let ping = Packet::Ping(Str::new());
        let parts = Parts::of(ProtocolVersion::V4, &ping, &mut text);
        let (header, payload) = parse(&whole(&parts));
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(payload, b"2");
    }

    #[test]
    fn the_rest_of_a_short_write() {
        let text = "y".repeat(300);
        let parts = Parts::message(text.as_bytes());
        let all = whole(&parts);
        for from in [0, 1, 4, 5, 6, 200, all.len()] {
            let mut rest = Vec::new();
            parts.copy_from(from, &mut rest);
            assert_eq!(rest, all[from..], "from {from}");
        }
    }
}
