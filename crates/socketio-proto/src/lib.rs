//! Sans-I/O Socket.IO protocol, both generations (v4, spoken by socket.io-client 1.x/2.x, and v5,
//! spoken by 3.x/4.x).
//!
//! # How this crate is built
//!
//! - [`packet`]: the packet model ([`Packet`], [`PacketData`]) and its text encoding.
//! - [`decoder`]: a per-connection [`Decoder`] that turns Engine.IO messages (text, then binary
//!   attachments) into packets. Waiting for attachments is a normal state, not an error; the count,
//!   size and time of attachments are bounded by [`DecoderLimits`].
//! - [`binary`]: the `{"_placeholder":true,"num":N}` markers that stand for attachments in JSON.
//! - [`msgpack`]: the msgpack parser (`socket.io-msgpack-parser`), one binary message per
//!   packet, binary inline.
//!
//! The wire codec is the same for v4 and v5; what differs (the CONNECT answer, the error payload)
//! is content chosen by the server, with [`ProtocolVersion`] as the value that decides it.

pub mod binary;
pub mod decoder;
pub mod msgpack;
pub mod packet;

pub use decoder::{Decoder, DecoderLimits, ParseError};
pub use packet::{Packet, PacketData, PacketKind};

/// The Socket.IO protocol generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// Protocol v4 (Engine.IO v3 clients): implicit connection to `/`, string ERROR payloads.
    V4,
    /// Protocol v5 (Engine.IO v4 clients): explicit CONNECT with `auth`, object CONNECT_ERROR.
    V5,
}
