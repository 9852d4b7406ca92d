//! `socketlet-jobs` with a Socket.IO client, under tokio's paused clock: a client that leaves
//! mid-batch has its queued jobs cancelled (its group is closed in the disconnect handler), its
//! running jobs finish, and nothing reaches the dead socket. The jobs API itself is tested in
//! `crates/jobs/tests`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{within, Polling};
use serde_json::{json, Value};
use socketlet::{EmitError, Socket, SocketIo};
use socketlet_jobs::{InProcessBackend, Jobs, Outcome};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Counts the jobs that started and those that finished.
#[derive(Default)]
struct Gauge {
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// A job kind `sleep` that takes `input.secs` seconds.
fn backend(slots: u32, gauge: Arc<Gauge>) -> InProcessBackend {
    InProcessBackend::new(slots).register("sleep", move |_ctx, input: Value| {
        let gauge = gauge.clone();
        async move {
            gauge.started.fetch_add(1, Ordering::SeqCst);
            let secs = input["secs"].as_u64().unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            gauge.finished.fetch_add(1, Ordering::SeqCst);
            Ok(json!({ "slept": secs }))
        }
    })
}

fn secs(n: u64) -> Value {
    json!({ "secs": n })
}

#[tokio::test(start_paused = true)]
async fn a_client_leaving_mid_batch_has_its_queued_jobs_cancelled_and_gets_nothing() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(2, gauge.clone()));
    let io = SocketIo::new();
    type Report = (Vec<Outcome>, Result<(), EmitError>);
    let (reports_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    io.of("/").on_connect(move |socket: Socket| {
        // One group per socket, closed when it leaves.
        let group = jobs.group(8);
        let leaving = group.clone();
        socket.on_disconnect(move |_socket: Socket, _reason| {
            leaving.close();
            async {}
        });
        let reports_tx = reports_tx.clone();
        socket.on("work", move |socket: Socket| {
            let group = group.clone();
            let reports_tx = reports_tx.clone();
            async move {
                let batch = group
                    .submit_batch([("sleep", secs(5)), ("sleep", secs(8)), ("sleep", secs(1))])
                    .unwrap();
                let results = batch
                    .wait(Instant::now() + Duration::from_secs(60), |_| {})
                    .await;
                let outcomes = results.into_iter().map(|(_, o)| o).collect();
                let _ = reports_tx.send((outcomes, socket.emit("results", 3)));
            }
        });
        async {}
    });
    let client = Polling::open(&io).await;
    client.connect(None).await;
    client.send("42[\"work\"]").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.send("1").await; // the client leaves
    let (outcomes, emitted) = within("the batch's end", reports.recv()).await.unwrap();
    assert_eq!(
        outcomes,
        [
            Outcome::Done(json!({"slept": 5})),
            Outcome::Done(json!({"slept": 8})),
            Outcome::Cancelled
        ],
        "the running jobs ran to the end; the queued one was cancelled"
    );
    assert!(
        matches!(emitted, Err(EmitError::Disconnected)),
        "nothing reaches a dead socket: {emitted:?}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(gauge.started.load(Ordering::SeqCst), 2, "never started");
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 2);
}
