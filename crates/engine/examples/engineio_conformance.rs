//! The raw Engine.IO echo server that the official Engine.IO v3 and v4 test suites
//! (`docs/engine.io-protocol/v{3,4}-test-suite` in the socketio/socket.io repository) expect:
//! every message comes back to its sender, with the settings the suites' READMEs give
//! (pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1e6, any origin, v3 allowed).
//!
//! ```sh
//! cargo run -p socketlet-engine --example engineio_conformance          # listens on 127.0.0.1:3000
//! cd socket.io/docs/engine.io-protocol/v4-test-suite && npm ci && npm test
//! ```
//!
//! `PORT` changes the port.

use socketlet_engine::{
    bind, serve, CloseReason, Cors, Engine, EngineConfig, EngineHandler, EngineService, Message,
    Socket,
};
use std::sync::Arc;
use std::time::Duration;

/// Sends every message back to its sender.
struct Echo;

impl EngineHandler for Echo {
    fn on_open(&self, _socket: &Arc<Socket>) {}

    fn on_message(&self, socket: &Arc<Socket>, msg: Message) {
        let _ = socket.send(msg);
    }

    fn on_close(&self, _socket: &Arc<Socket>, _reason: CloseReason) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let config = EngineConfig::default()
        .with_ping_interval(Duration::from_millis(300))
        .with_ping_timeout(Duration::from_millis(200))
        .with_max_payload(1_000_000)
        .with_cors(Cors::Any)
        .with_allow_eio3(true);
    let engine = Engine::new(config, Arc::new(Echo));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener = bind(addr)?;
    eprintln!("LISTENING {}", listener.local_addr()?);
    serve(listener, EngineService::new(engine), std::future::pending()).await
}
