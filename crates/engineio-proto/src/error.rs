//! Engine.IO errors: the HTTP error codes of the handshake/transport layer, and decode errors.

use std::fmt;

/// The Engine.IO HTTP error codes, sent as JSON `{"code":N,"message":"..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: the `transport` query parameter is missing or unknown.
    UnknownTransport = 0,
    /// 1: the `sid` is not a live session.
    UnknownSid = 1,
    /// 2: a handshake with a method other than GET (or an upgrade without WebSocket headers).
    BadHandshakeMethod = 2,
    /// 3: anything else the request got wrong.
    BadRequest = 3,
    /// 4: refused by `allow_request` (sent with status 403).
    Forbidden = 4,
    /// 5: `EIO` missing or not a version this server speaks.
    UnsupportedProtocolVersion = 5,
}

impl ErrorCode {
    /// The message Node's engine.io sends with this code.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownTransport => "Transport unknown",
            Self::UnknownSid => "Session ID unknown",
            Self::BadHandshakeMethod => "Bad handshake method",
            Self::BadRequest => "Bad request",
            Self::Forbidden => "Forbidden",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP status: 403 for [`ErrorCode::Forbidden`], 400 otherwise.
    pub fn status(self) -> u16 {
        match self {
            Self::Forbidden => 403,
            _ => 400,
        }
    }

    /// The JSON body, e.g. `{"code":1,"message":"Session ID unknown"}`.
    pub fn to_json(self) -> String {
        format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self as u8,
            self.message()
        )
    }
}

/// Why bytes from a client could not be decoded. Every variant is fatal for the session that sent
/// them: the engine closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// An empty packet (no type character).
    Empty,
    /// The packet type is not one of `0`..`6`.
    UnknownPacketType(u8),
    /// A v3 length prefix is missing, not a number, or longer than what follows.
    BadLength,
    /// Text that is not valid UTF-8.
    InvalidUtf8,
    /// A `b`-prefixed packet whose base64 is invalid.
    InvalidBase64,
    /// The payload holds more bytes or packets than the configured limit.
    TooLarge,
    /// A JSONP form body without a `d=` field, or with bad escaping.
    BadJsonp,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty packet"),
            Self::UnknownPacketType(b) => write!(f, "unknown packet type {b:#04x}"),
            Self::BadLength => f.write_str("bad length prefix in payload"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Self::InvalidBase64 => f.write_str("invalid base64 in binary packet"),
            Self::TooLarge => f.write_str("payload over the size limit"),
            Self::BadJsonp => f.write_str("malformed JSONP body"),
        }
    }
}

impl std::error::Error for DecodeError {}
