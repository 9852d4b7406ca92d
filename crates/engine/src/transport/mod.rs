//! The two transports. Both feed the session's state machine and drain its outbox.

pub(crate) mod frame;
pub(crate) mod polling;
pub(crate) mod websocket;
pub(crate) mod ws_io;
