//! The jobs API, with tokio's paused clock: batches under one deadline, failures, concurrency,
//! a client leaving mid-batch, and shutdown mid-batch.
#![allow(clippy::unwrap_used)]

mod common;

use common::{within, Polling};
use serde_json::{json, Value};
use socketlet::jobs::{InProcessBackend, JobError, JobEventKind, Jobs, Outcome};
use socketlet::{EmitError, Socket, SocketIo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A job kind `sleep` that takes `input.secs` seconds (reporting progress each second), fails when
/// `input.fail` is set, and counts how many run at once and how many finished.
#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
    finished: AtomicUsize,
}

fn backend(slots: u32, gauge: Arc<Gauge>) -> InProcessBackend {
    InProcessBackend::new(slots).register("sleep", move |ctx, input: Value| {
        let gauge = gauge.clone();
        async move {
            let now = gauge.running.fetch_add(1, Ordering::SeqCst) + 1;
            gauge.peak.fetch_max(now, Ordering::SeqCst);
            let secs = input["secs"].as_u64().unwrap_or(1);
            for i in 0..secs {
                ctx.progress(i as f32 / secs as f32, format!("second {i}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            gauge.running.fetch_sub(1, Ordering::SeqCst);
            gauge.finished.fetch_add(1, Ordering::SeqCst);
            match input["fail"].as_str() {
                Some(why) => Err(why.to_owned()),
                None => Ok(json!({"slept": secs})),
            }
        }
    })
}

fn secs(n: u64) -> Value {
    json!({ "secs": n })
}

#[tokio::test(start_paused = true)]
async fn a_batch_completes_with_bounded_concurrency_and_progress() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(2, gauge.clone()));
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([("sleep", secs(3)), ("sleep", secs(3)), ("sleep", secs(3))])
        .unwrap();
    assert_eq!(batch.ids().len(), 3);
    let mut progress = 0;
    let results = batch
        .wait(t0 + Duration::from_secs(60), |e| {
            if matches!(e.kind, JobEventKind::Progress { .. }) {
                progress += 1;
            }
        })
        .await;
    for (_, outcome) in &results {
        assert_eq!(*outcome, Outcome::Done(json!({"slept": 3})));
    }
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 2, "at most 2 at once");
    assert_eq!(progress, 9);
    // Two at once, then the third: 6 s of virtual time, not 3 and not 9.
    assert_eq!(t0.elapsed().as_secs(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_seen_the_moment_it_happens_and_not_retried() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(4, gauge.clone()));
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([
            ("sleep", secs(10)),
            ("sleep", json!({"secs": 2, "fail": "disk full"})),
        ])
        .unwrap();
    let mut failed_at = None;
    let results = batch
        .wait(t0 + Duration::from_secs(60), |e| {
            if let JobEventKind::Failed { error } = &e.kind {
                assert_eq!(error, "disk full");
                failed_at = Some(t0.elapsed());
            }
        })
        .await;
    assert_eq!(failed_at, Some(Duration::from_secs(2)));
    assert_eq!(results[0].1, Outcome::Done(json!({"slept": 10})));
    assert_eq!(results[1].1, Outcome::Failed("disk full".into()));
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 2, "no retry");
}

#[tokio::test(start_paused = true)]
async fn one_deadline_for_the_whole_batch() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(1, gauge.clone()));
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([("sleep", secs(5)), ("sleep", secs(100)), ("sleep", secs(1))])
        .unwrap();
    let results = batch.wait(t0 + Duration::from_secs(30), |_| {}).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(results[0].1, Outcome::Done(json!({"slept": 5})));
    assert_eq!(results[1].1, Outcome::Running);
    assert_eq!(
        results[2].1,
        Outcome::Queued,
        "one slot, still taken at the deadline"
    );
    // Past the deadline the jobs go on.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn unknown_kinds_submit_nothing_and_panics_are_failures() {
    let jobs = Jobs::new(
        InProcessBackend::new(1).register("boom", |_ctx, _input| async move {
            if true {
                panic!("bug in a job");
            }
            Ok::<_, String>(Value::Null)
        }),
    );
    assert_eq!(
        jobs.submit_batch([("boom", Value::Null), ("nope", Value::Null)])
            .unwrap_err(),
        JobError::UnknownKind("nope".into())
    );
    let batch = jobs.submit_batch([("boom", Value::Null)]).unwrap();
    let results = batch
        .wait(Instant::now() + Duration::from_secs(5), |_| {})
        .await;
    assert_eq!(results[0].1, Outcome::Failed("the job panicked".into()));
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_running_jobs_finish_within_grace_then_abandons_them() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(2, gauge.clone()));
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([("sleep", secs(5)), ("sleep", secs(100)), ("sleep", secs(1))])
        .unwrap();
    let waiter = tokio::spawn(batch.wait(t0 + Duration::from_secs(300), |_| {}));
    tokio::time::sleep(Duration::from_secs(1)).await;
    within("shutdown", jobs.shutdown(Duration::from_secs(10))).await;
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(11),
        "returns at the end of the grace period"
    );
    let results = within("batch", waiter).await.unwrap();
    assert_eq!(
        results[0].1,
        Outcome::Done(json!({"slept": 5})),
        "finished within grace"
    );
    assert_eq!(
        results[1].1,
        Outcome::Running,
        "abandoned at the end of grace"
    );
    assert_eq!(
        results[2].1,
        Outcome::Failed("jobs are shutting down".into()),
        "still queued when shutdown began"
    );
    assert_eq!(
        jobs.submit_batch([("sleep", secs(1))]).unwrap_err(),
        JobError::ShuttingDown
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_leaving_mid_batch_does_not_cancel_jobs_and_gets_nothing() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(4, gauge.clone()));
    let io = SocketIo::new();
    let (emits_tx, mut emits) = mpsc::unbounded_channel::<Result<(), EmitError>>();
    io.of("/").on_connect(move |socket: Socket| {
        let jobs = jobs.clone();
        let emits_tx = emits_tx.clone();
        socket.on("work", move |socket, _ev| {
            let jobs = jobs.clone();
            let emits_tx = emits_tx.clone();
            async move {
                let batch = jobs
                    .submit_batch([("sleep", secs(5)), ("sleep", secs(8))])
                    .unwrap();
                let results = batch
                    .wait(Instant::now() + Duration::from_secs(60), |_| {})
                    .await;
                let _ = emits_tx.send(socket.emit("results", json!(results.len())));
            }
        });
    });
    let client = Polling::open(&io).await;
    client.connect(None).await;
    client.send("42[\"work\"]").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.send("1").await; // the client leaves
    let emitted = within("the batch's end", emits.recv()).await.unwrap();
    assert!(
        matches!(emitted, Err(EmitError::Disconnected)),
        "nothing reaches a dead socket: {emitted:?}"
    );
    assert_eq!(
        gauge.finished.load(Ordering::SeqCst),
        2,
        "the jobs ran to the end"
    );
}
