//! socketlet mounted in an axum app, next to ordinary routes, with a background task that pushes
//! to a room.
//!
//! Run: `cargo run -p socketlet --example axum`, then connect a client to `http://127.0.0.1:3001`.

use axum::{routing::get, Router};
use serde_json::json;
use socketlet::{Socket, SocketIo};
use std::time::Duration;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let io = SocketIo::new();
    io.of("/").on_connect(|socket: Socket| {
        socket.join(["ticks"]);
        socket.on("echo", |_socket, event| async move {
            if let Some(ack) = event.ack {
                let _ = ack.send(event.data);
            }
        });
    });

    // The handle is cheap to clone and `Send + 'static`: any task can emit at any time.
    let ticker = io.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n += 1;
            let _ = ticker.to("ticks").emit("tick", json!({ "n": n }));
        }
    });

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(io.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    axum::serve(listener, app).await
}
