//! The Socket.IO application that the official Socket.IO v5 test suite
//! (`docs/socket.io-protocol/v5-test-suite` in the socketio/socket.io repository) expects, with
//! the settings its README gives: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1e6,
//! connectTimeout 1000 ms, any origin.
//!
//! ```sh
//! cargo run -p socketlet --example socketio_conformance          # listens on 127.0.0.1:3000
//! cd socket.io/docs/socket.io-protocol/v5-test-suite && npm ci && npm test
//! ```
//!
//! `PORT` changes the port. The application is `tests/conformance/app.rs`, which the
//! conformance tests serve too.

#[path = "../tests/conformance/app.rs"]
mod app;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let io = app::server();
    let listener = socketlet::bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    eprintln!("LISTENING {}", listener.local_addr()?);
    socketlet::serve(listener, io.service(), std::future::pending()).await
}
