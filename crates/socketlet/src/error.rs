//! Errors of the Socket.IO layer, and disconnect reasons. Each error says whether the connection
//! survives it.

use crate::adapter::AdapterError;
use serde_json::Value;
use socketlet_engine::CloseReason;
use std::fmt;

/// A connect middleware's refusal: the client gets CONNECT_ERROR with this message (and data,
/// for v5 clients) and stays unconnected to the namespace. The Engine.IO connection stays open.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnectError {
    /// The message (`err.message` on the client).
    pub message: String,
    /// Extra data (`err.data` on the client), v5 clients only.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds data sent along with the message.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// Why an emit did not go out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EmitError {
    /// The socket is disconnected. Nothing is sent.
    Disconnected,
    /// The client fell too far behind (its queue hit `max_buffered_packets`) and was
    /// disconnected: the connection is over.
    BufferFull,
    /// The event name is one Socket.IO reserves (`connect`, `disconnect`, ...).
    ReservedEvent(String),
    /// The adapter could not deliver to other nodes (local delivery still happened).
    Adapter(AdapterError),
    /// The arguments do not serialize to JSON (a map with non-string keys, say). Nothing is
    /// sent; the connection goes on.
    Serialize(String),
    /// A volatile emit was dropped: the client could not take it right now. The connection
    /// goes on.
    Dropped,
}

impl EmitError {
    /// Whether the socket's connection is over because of this error (not for a dropped
    /// volatile event, a reserved name, arguments that do not serialize, or a cluster error).
    pub fn ends_connection(&self) -> bool {
        matches!(self, EmitError::Disconnected | EmitError::BufferFull)
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Disconnected => f.write_str("socket is disconnected"),
            EmitError::BufferFull => f.write_str("client fell too far behind and was disconnected"),
            EmitError::ReservedEvent(e) => write!(f, "\"{e}\" is a reserved event name"),
            EmitError::Adapter(e) => write!(f, "adapter error: {e}"),
            EmitError::Serialize(e) => write!(f, "the arguments do not serialize: {e}"),
            EmitError::Dropped => f.write_str("volatile event dropped: the client was not ready"),
        }
    }
}

impl std::error::Error for EmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EmitError::Adapter(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for EmitError {
    fn from(e: serde_json::Error) -> Self {
        EmitError::Serialize(e.to_string())
    }
}

impl From<AdapterError> for EmitError {
    fn from(e: AdapterError) -> Self {
        EmitError::Adapter(e)
    }
}

/// Why an ack did not come.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout. The connection goes on.
    Timeout,
    /// The socket disconnected before answering.
    Disconnected,
    /// The emit itself failed.
    Emit(EmitError),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Timeout => f.write_str("ack timed out"),
            AckError::Disconnected => f.write_str("socket disconnected before acking"),
            AckError::Emit(e) => write!(f, "emit failed: {e}"),
        }
    }
}

impl std::error::Error for AckError {}

impl From<EmitError> for AckError {
    fn from(e: EmitError) -> Self {
        AckError::Emit(e)
    }
}

/// Why a socket left a namespace, with the names Node's socket.io gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server called [`crate::Socket::disconnect`].
    ServerNamespaceDisconnect,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
    /// The server closed the whole connection.
    ServerShuttingDown,
    /// The connection was closed by the server (e.g. [`crate::Socket::close_connection`]).
    ForcedClose,
    /// The client stopped answering heartbeats.
    PingTimeout,
    /// The connection was lost or closed by the client.
    TransportClose,
    /// The connection broke the protocol or fell too far behind.
    TransportError,
    /// The client sent a packet that could not be parsed.
    ParseError,
}

impl DisconnectReason {
    /// Node's name for the reason (`"transport close"`, `"ping timeout"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ServerShuttingDown => "server shutting down",
            Self::ForcedClose => "forced close",
            Self::PingTimeout => "ping timeout",
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::ParseError => "parse error",
        }
    }

    /// Whether a socket that left for this reason may recover its session (connection state
    /// recovery): the transport went away or broke, or the server closed it; not when either
    /// side left the namespace on purpose or the client broke the protocol.
    pub fn is_recoverable(self) -> bool {
        matches!(
            self,
            Self::TransportError
                | Self::TransportClose
                | Self::ForcedClose
                | Self::PingTimeout
                | Self::ServerShuttingDown
        )
    }

    pub(crate) fn from_engine(r: CloseReason) -> Self {
        match r {
            CloseReason::ClientClose | CloseReason::TransportClose => Self::TransportClose,
            CloseReason::ServerClose => Self::ForcedClose,
            CloseReason::PingTimeout => Self::PingTimeout,
            CloseReason::ServerShutdown => Self::ServerShuttingDown,
            _ => Self::TransportError,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
