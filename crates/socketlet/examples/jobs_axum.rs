//! The story's workflow in a user's own axum app: a client asks for work, the jobs run without
//! blocking anything, progress streams back, and all results arrive together under one deadline.
//!
//! Run: `cargo run -p socketlet --example jobs_axum`, then emit `open_vms` with a list of names
//! from a client connected to `http://127.0.0.1:3002`.

use axum::{routing::get, Router};
use serde_json::json;
use socketlet::jobs::{InProcessBackend, Jobs};
use socketlet::{Socket, SocketIo};
use std::time::Duration;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // What one job does; real code would call a hypervisor, a cloud API, a script...
    let jobs = Jobs::new(
        InProcessBackend::new(4).register("open_vm", |ctx, name| async move {
            ctx.progress(0.3, "booting");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(json!({ "name": name, "state": "running" }))
        }),
    );

    let io = SocketIo::new();
    let shutdown_jobs = jobs.clone();
    io.of("/").on_connect(move |socket: Socket| {
        let jobs = jobs.clone();
        socket.on("open_vms", move |socket, event| {
            let jobs = jobs.clone();
            async move {
                let names = event
                    .data
                    .args
                    .first()
                    .and_then(|v| v.as_array())
                    .cloned()
                    .unwrap_or_default();
                let Ok(batch) = jobs.submit_batch(names.into_iter().map(|n| ("open_vm", n))) else {
                    return;
                };
                if let Some(ack) = event.ack {
                    let _ = ack.send(json!(batch.ids()));
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                let results = batch
                    .wait(deadline, |e| {
                        let _ = socket.emit("vm_progress", json!(e));
                    })
                    .await;
                let _ = socket.emit("vm_response", json!(results));
            }
        });
    });

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(io.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Running jobs get 30 s to finish before the process exits.
    shutdown_jobs.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
