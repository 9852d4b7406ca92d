//! The story's workflow in a user's own axum app, with `socketlet-jobs`: a client asks for work,
//! the jobs run without blocking anything, progress streams back, and all results arrive
//! together under one deadline. Queues are bounded: at most 8 jobs queued or running per client,
//! 256 waiting in all; a client that leaves has its queued jobs cancelled.
//!
//! Run: `cargo run -p socketlet --example jobs_axum`, then emit `open_vms` with a list of names
//! from a client connected to `http://127.0.0.1:3002`.

use axum::{routing::get, Router};
use serde_json::{json, Value};
use socketlet::{AckSender, Args, Socket, SocketIo};
use socketlet_jobs::{InProcessBackend, Jobs};
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
    )
    .with_max_queued(256);

    let io = SocketIo::new();
    let shutdown_jobs = jobs.clone();
    io.of("/").on_connect(move |socket: Socket| {
        // Each client's jobs: bounded together, and cancelled (if not started) when it leaves.
        let client_jobs = jobs.group(8);
        let leaving = client_jobs.clone();
        socket.on_disconnect(move |_socket: Socket, _reason| {
            leaving.close();
            async {}
        });
        socket.on(
            "open_vms",
            move |socket: Socket, Args(names): Args<Vec<Value>>, ack: AckSender| {
                let client_jobs = client_jobs.clone();
                async move {
                    let batch =
                        match client_jobs.submit_batch(names.into_iter().map(|n| ("open_vm", n))) {
                            Ok(batch) => batch,
                            Err(refused) => {
                                let _ = ack.send(json!({ "error": refused.to_string() }));
                                return;
                            }
                        };
                    let _ = ack.send(batch.ids());
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                    let results = batch
                        .wait(deadline, |e| {
                            let _ = socket.emit("vm_progress", e);
                        })
                        .await;
                    let _ = socket.emit("vm_response", results);
                }
            },
        );
        async {}
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
