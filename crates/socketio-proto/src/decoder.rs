//! Turns Engine.IO messages into Socket.IO packets, with bounded attachment reassembly.

use crate::packet::Packet;
use bytes::Bytes;
use std::fmt;
use std::time::{Duration, Instant};

/// Bounds on what one connection may make the decoder hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecoderLimits {
    /// Most attachments one packet may announce. Default: 10.
    pub max_attachments: usize,
    /// Most bytes all attachments of one packet may add up to. Default: 1,000,000 (Node's
    /// `maxHttpBufferSize`).
    pub max_attachment_bytes: usize,
    /// Longest wait from the text part to the last attachment. Default: 10 s.
    pub attachment_timeout: Duration,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_attachments: 10,
            max_attachment_bytes: 1_000_000,
            attachment_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a message could not be decoded. Every variant ends the connection (the server closes the
/// Engine.IO session, as Node does on a parser error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Empty text, or an unknown packet type.
    InvalidType,
    /// The attachment count is missing its `-`, not a number, zero for a binary type, or over
    /// [`DecoderLimits::max_attachments`].
    InvalidAttachments,
    /// The namespace does not end where it should.
    InvalidNamespace,
    /// The ack id is not a number that fits in a `u64`, or is missing on ACK.
    InvalidAckId,
    /// The JSON does not parse, or its shape does not fit the type (EVENT needs a non-empty array
    /// whose first element is a string, ACK an array, CONNECT an object or nothing, DISCONNECT
    /// nothing, CONNECT_ERROR a string or an object).
    InvalidPayload,
    /// A placeholder refers to an attachment that was not announced.
    InvalidPlaceholder,
    /// A binary message arrived while no binary packet was waiting for one.
    UnexpectedBinary,
    /// A text message arrived while attachments were still expected.
    UnexpectedText,
    /// The attachments add up to more than [`DecoderLimits::max_attachment_bytes`].
    AttachmentsTooLarge,
    /// The attachments did not all arrive within [`DecoderLimits::attachment_timeout`].
    AttachmentTimeout,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl std::error::Error for ParseError {}

/// Per-connection decoder state: idle, or a binary packet waiting for its attachments.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: DecoderLimits,
    // Implementation detail: the partial packet, attachments still expected, bytes so far, and
    // the deadline.
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: DecoderLimits) -> Self {
        todo!()
    }

    /// Decodes a text message. Returns `Ok(None)` when the packet announced attachments: they
    /// must follow through [`Decoder::decode_binary`] before `deadline()`.
    /// `now` starts the attachment deadline.
    pub fn decode_text(&mut self, text: &str, now: Instant) -> Result<Option<Packet>, ParseError> {
        todo!()
    }

    /// Adds one attachment. Returns the packet once its last attachment arrived. Errors if nothing
    /// was waiting, the size limit is passed, or `now` is past the deadline.
    pub fn decode_binary(&mut self, data: Bytes, now: Instant) -> Result<Option<Packet>, ParseError> {
        todo!()
    }

    /// When the attachments still expected must have arrived, if any are expected.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }
}
