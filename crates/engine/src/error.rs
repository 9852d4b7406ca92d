//! Errors of the engine layer.

use std::fmt;

/// Why a message could not be queued for a client. Either way the session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed. Nothing more can be sent to it.
    Closed,
    /// The client fell `max_buffered_packets` behind; the session has been closed (the policy
    /// documented on [`crate::EngineConfig::max_buffered_packets`]).
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the session is closed"),
            SendError::Full => f.write_str("the client fell too far behind and was disconnected"),
        }
    }
}

impl std::error::Error for SendError {}
