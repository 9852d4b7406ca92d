//! The application and settings that the official Socket.IO v5 test suite expects:
//! pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1e6, connectTimeout 1000 ms, any origin.
//! On connect to `/` or `/custom` the socket is sent an `auth` event with its auth payload; on
//! `/`, `message` is answered with `message-back` and the same arguments, and
//! `message-with-ack` is acked with the same arguments.
//!
//! Served by `examples/socketio_conformance.rs` (for the suite itself) and by
//! `tests/conformance.rs` (which holds socketlet to what the suite checks).

use socketlet::{AckSender, Cors, Data, Socket, SocketIo};
use std::time::Duration;

/// The suite's connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// A server with the suite's settings and application.
pub fn server() -> SocketIo {
    let io = SocketIo::builder()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_payload(1_000_000)
        .connect_timeout(CONNECT_TIMEOUT)
        .cors(Cors::Any)
        .build();
    io.of("/").on_connect(|socket: Socket| async move {
        let _ = socket.emit("auth", socket.auth());
        socket.on("message", |socket: Socket, data: Data| async move {
            let _ = socket.emit("message-back", data);
        });
        socket.on(
            "message-with-ack",
            |data: Data, ack: AckSender| async move {
                let _ = ack.send(data);
            },
        );
    });
    io.of("/custom").on_connect(|socket: Socket| async move {
        let _ = socket.emit("auth", socket.auth());
    });
    io
}
