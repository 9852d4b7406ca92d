//! socketlet mounted in an axum app, next to ordinary routes, with a background task that pushes
//! to a room.
//!
//! Run: `cargo run -p socketlet --example axum`, then connect a client to `http://127.0.0.1:3001`.

use axum::{routing::get, Router};
use serde::Serialize;
use socketlet::{AckSender, Data, Socket, SocketIo};
use std::time::Duration;

#[derive(Serialize)]
struct Tick {
    n: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let io = SocketIo::new();
    io.of("/").on_connect(|socket: Socket| async move {
        socket.join(["ticks"]);
        socket.on("echo", |data: Data, ack: AckSender| async move {
            let _ = ack.send(data);
        });
    });

    // The handle is cheap to clone and `Send + 'static`: any task can emit at any time.
    let ticker = io.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n += 1;
            let _ = ticker.to("ticks").emit("tick", Tick { n });
        }
    });

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(io.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    axum::serve(listener, app).await
}
