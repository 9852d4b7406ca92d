//! The two transports. Both feed the session's state machine and drain its outbox.

pub(crate) mod polling;
pub(crate) mod websocket;
