//! The jobs API, with tokio's paused clock: batches under one deadline, failures, concurrency,
//! bounded queues (server-wide and per group), cancellation, and shutdown mid-batch.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use socketlet_jobs::{InProcessBackend, JobError, JobEventKind, Jobs, Outcome};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Awaits `fut`, failing the test if it takes longer than 120 s (of virtual time).
async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(120), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A job kind `sleep` that takes `input.secs` seconds (reporting progress each second), fails when
/// `input.fail` is set, and counts how many run at once, how many started and how many finished.
#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

fn backend(slots: u32, gauge: Arc<Gauge>) -> InProcessBackend {
    InProcessBackend::new(slots).register("sleep", move |ctx, input: Value| {
        let gauge = gauge.clone();
        async move {
            gauge.started.fetch_add(1, Ordering::SeqCst);
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

/// Lets every task run until all are idle (the clock is paused: the sleep ends only then).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
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
    assert_eq!(jobs.queued(), 0);
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
    let stats = jobs.stats();
    assert_eq!((stats.done, stats.failed, stats.running), (1, 1, 0));
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
    // Past the deadline (and with the batch dropped) the jobs go on.
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
    assert_eq!(jobs.queued(), 0);
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
    assert_eq!(jobs.queued(), 0, "nothing is left counted");
}

/// Finding F of issue 19: one socket queued 48,000 jobs in 3 s. The server-wide bound refuses a
/// flood whole, with a clear error, and the queue never holds more than the bound.
#[tokio::test(start_paused = true)]
async fn a_flood_past_max_queued_is_refused_and_the_queue_stays_bounded() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(1, gauge.clone())).with_max_queued(5);
    assert_eq!(jobs.max_queued(), 5);
    // The first job takes the free slot at once, so it is no longer queued.
    let first = jobs.submit_batch([("sleep", secs(10))]).unwrap();
    assert_eq!(jobs.queued(), 0);
    let five = jobs
        .submit_batch((0..5).map(|_| ("sleep", secs(1))))
        .unwrap();
    assert_eq!(jobs.queued(), 5);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..48_000 {
        match jobs.submit_batch([("sleep", secs(1))]) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e, JobError::QueueFull { max_queued: 5 });
                refused += 1;
            }
        }
        assert!(jobs.queued() <= 5);
    }
    assert_eq!((accepted, refused), (0, 48_000));
    assert_eq!(
        JobError::QueueFull { max_queued: 5 }.to_string(),
        "the job queue is full (at most 5 jobs may wait at once); try again later"
    );
    // A batch that would pass the bound is refused whole, even when part of it would fit.
    let t0 = Instant::now();
    let results = first.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert_eq!(results[0].1, Outcome::Done(json!({"slept": 10})));
    assert_eq!(jobs.queued(), 4, "one of the five took the slot");
    assert_eq!(
        jobs.submit_batch([("sleep", secs(1)), ("sleep", secs(1))])
            .unwrap_err(),
        JobError::QueueFull { max_queued: 5 }
    );
    assert_eq!(jobs.queued(), 4, "a refused batch leaves nothing behind");
    let one_more = jobs.submit_batch([("sleep", secs(1))]).unwrap();
    let results = five.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(results.iter().all(|(_, o)| matches!(o, Outcome::Done(_))));
    let results = one_more.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(matches!(results[0].1, Outcome::Done(_)));
    assert_eq!(jobs.queued(), 0);
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 7);
}

#[tokio::test(start_paused = true)]
async fn a_group_bounds_its_queued_and_running_jobs() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(1, gauge.clone()));
    let client = jobs.group(3);
    let other = jobs.group(3);
    assert_eq!(client.max_active(), 3);
    let t0 = Instant::now();
    let batch = client
        .submit_batch([("sleep", secs(2)), ("sleep", secs(2))])
        .unwrap();
    assert_eq!(client.active(), 2, "one running, one queued");
    assert_eq!(
        client
            .submit_batch([("sleep", secs(1)), ("sleep", secs(1))])
            .unwrap_err(),
        JobError::GroupFull { max_active: 3 }
    );
    assert_eq!(
        JobError::GroupFull { max_active: 3 }.to_string(),
        "too many jobs in progress (at most 3 may be queued or running at once)"
    );
    assert_eq!(client.active(), 2, "a refused batch leaves nothing behind");
    assert_eq!(jobs.queued(), 1);
    // Another group has its own bound.
    let others = other.submit_batch([("sleep", secs(1))]).unwrap();
    let results = batch.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(results.iter().all(|(_, o)| matches!(o, Outcome::Done(_))));
    // Once its jobs ended, the group has room again.
    let again = client
        .submit_batch([("sleep", secs(1)), ("sleep", secs(1)), ("sleep", secs(1))])
        .unwrap();
    let results = again.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(results.iter().all(|(_, o)| matches!(o, Outcome::Done(_))));
    let results = others.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(matches!(results[0].1, Outcome::Done(_)));
    assert_eq!(client.active(), 0);
    assert_eq!(jobs.queued(), 0);
}

/// A client that leaves: its group is closed, its queued jobs end at once as cancelled and never
/// start, its running job finishes, and the slot goes to someone else's job.
#[tokio::test(start_paused = true)]
async fn closing_a_group_cancels_its_queued_jobs_and_lets_the_running_one_finish() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(1, gauge.clone()));
    let leaving = jobs.group(10);
    let staying = jobs.group(10);
    let t0 = Instant::now();
    let batch = leaving
        .submit_batch([("sleep", secs(5)), ("sleep", secs(5)), ("sleep", secs(5))])
        .unwrap();
    let honest = staying.submit_batch([("sleep", secs(1))]).unwrap();
    let waiter = tokio::spawn(batch.wait(t0 + Duration::from_secs(60), move |e| {
        if e.kind == JobEventKind::Cancelled {
            assert_eq!(t0.elapsed(), Duration::from_secs(1), "reported at once");
        }
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(jobs.queued(), 3);
    assert_eq!(leaving.close(), 2);
    assert!(leaving.is_closed());
    assert_eq!(jobs.queued(), 1, "only the other group's job waits");
    assert_eq!(leaving.active(), 1, "the running one");
    assert_eq!(
        leaving.submit_batch([("sleep", secs(1))]).unwrap_err(),
        JobError::GroupClosed
    );
    let results = within("the batch", waiter).await.unwrap();
    assert_eq!(results[0].1, Outcome::Done(json!({"slept": 5})));
    assert_eq!(results[1].1, Outcome::Cancelled);
    assert_eq!(results[2].1, Outcome::Cancelled);
    // The other group's job had the slot next, not after the cancelled ones.
    let results = honest.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert!(matches!(results[0].1, Outcome::Done(_)));
    assert_eq!(t0.elapsed(), Duration::from_secs(6));
    // The cancelled jobs never run, however long we wait.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(gauge.started.load(Ordering::SeqCst), 2);
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 2);
    assert_eq!(leaving.active(), 0);
    assert_eq!(leaving.cancel_queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_can_cancel_its_queued_jobs_while_it_is_awaited() {
    let gauge = Arc::new(Gauge::default());
    let jobs = Jobs::new(backend(1, gauge.clone()));
    let group = jobs.group(4);
    let t0 = Instant::now();
    let batch = group
        .submit_batch([("sleep", secs(3)), ("sleep", secs(3))])
        .unwrap();
    let canceller = batch.canceller();
    let mut events = Vec::new();
    settle().await;
    let stats = jobs.stats();
    assert_eq!((stats.queued, stats.running), (1, 1), "{stats:?}");
    let (results, cancelled) = tokio::join!(
        batch.wait(t0 + Duration::from_secs(60), |e| events
            .push(e.kind.clone())),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            canceller.cancel_queued()
        }
    );
    assert_eq!(cancelled, 1);
    assert_eq!(results[0].1, Outcome::Done(json!({"slept": 3})));
    assert_eq!(results[1].1, Outcome::Cancelled);
    assert_eq!(
        events
            .iter()
            .filter(|k| !matches!(k, JobEventKind::Progress { .. }))
            .collect::<Vec<_>>(),
        [
            &JobEventKind::Started,
            &JobEventKind::Cancelled,
            &JobEventKind::Done {
                result: json!({"slept": 3})
            }
        ]
    );
    assert_eq!(group.active(), 0);
    assert_eq!(gauge.started.load(Ordering::SeqCst), 1);
    // Before it is awaited, too; then nothing is left to cancel.
    let batch = jobs
        .submit_batch([("sleep", secs(1)), ("sleep", secs(1))])
        .unwrap();
    assert_eq!(batch.cancel_queued(), 1);
    assert_eq!(batch.cancel_queued(), 0);
    let results = batch.wait(t0 + Duration::from_secs(60), |_| {}).await;
    assert_eq!(
        results.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
        [Outcome::Done(json!({"slept": 1})), Outcome::Cancelled]
    );
    assert_eq!(
        serde_json::to_value(&results[1].1).unwrap(),
        json!({"status": "cancelled"})
    );
    let stats = jobs.stats();
    assert_eq!(
        (
            stats.queued,
            stats.running,
            stats.done,
            stats.failed,
            stats.cancelled
        ),
        (0, 0, 2, 0, 2),
        "{stats:?}"
    );
}
