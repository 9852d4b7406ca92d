//! Sans-I/O Engine.IO protocol, both generations (v3 and v4).
//!
//! # How this crate is built
//!
//! Bytes go in, packets, events and deadlines come out; nothing here touches a socket, a clock or a
//! runtime. The engine (`socketlet-engine`) owns the I/O and passes time in as [`std::time::Instant`]
//! values.
//!
//! - [`packet`]: one Engine.IO packet and its text/binary forms (WebSocket frames).
//! - [`payload`]: the polling framing, which is where v3 and v4 differ most.
//! - [`handshake`]: the JSON body of the OPEN packet.
//! - [`session`]: the per-session state machine (heartbeats, upgrade, close).
//! - [`error`]: the HTTP-level error codes and the decode errors.
//!
//! A protocol generation is a value ([`ProtocolVersion`]), never a separate code path that
//! duplicates the rest.

pub mod error;
pub mod handshake;
pub mod packet;
pub mod payload;
pub mod session;
mod str;

pub use error::{DecodeError, ErrorCode};
pub use handshake::Handshake;
pub use packet::{Packet, PacketType};
pub use str::Str;

/// The Engine.IO protocol generation a client speaks, chosen by the `EIO` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// `EIO=3`: socket.io-client 1.x/2.x, python-engineio 3.x.
    V3,
    /// `EIO=4`: socket.io-client 3.x/4.x, python-engineio 4.x.
    V4,
}

impl ProtocolVersion {
    /// Parses the value of the `EIO` query parameter (`"3"` or `"4"`).
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "3" => Some(Self::V3),
            "4" => Some(Self::V4),
            _ => None,
        }
    }

    /// The number sent on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::V3 => 3,
            Self::V4 => 4,
        }
    }
}
