//! Background jobs whose progress and results go back to whoever asked for them, on bounded
//! queues.
//!
//! The pattern this replaces: `start_background_task(f)` where `f` sends one task per item to a
//! queue and then blocks on `get_result(block=True, timeout=...)` for each, freezing an eventlet
//! server until the standard library is monkey-patched. Here nothing blocks: a [`Batch`] of jobs
//! runs on a [`JobBackend`], its progress arrives as [`JobEvent`]s, and the caller awaits the
//! whole batch under **one** deadline, getting an [`Outcome`] per job.
//!
//! ```
//! use socketlet_jobs::{Jobs, InProcessBackend, Outcome};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let backend = InProcessBackend::new(4).register("square", |ctx, input| async move {
//!     ctx.progress(0.5, "thinking");
//!     let n = input.as_i64().ok_or("not a number")?;
//!     Ok(json!(n * n))
//! });
//! let jobs = Jobs::new(backend);
//! let batch = jobs.submit_batch([("square", json!(3)), ("square", json!("x"))]).unwrap();
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
//! let results = batch.wait(deadline, |_event| {}).await;
//! assert_eq!(results[0].1, Outcome::Done(json!(9)));
//! assert_eq!(results[1].1, Outcome::Failed("not a number".into()));
//! # }
//! ```
//!
//! A server gives each client a [`JobGroup`]: it bounds what that client may have queued or
//! running, and when the client leaves, [`JobGroup::close`] cancels its jobs that have not
//! started (running ones finish):
//!
//! ```
//! use socketlet_jobs::{InProcessBackend, JobError, Jobs, Outcome};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let jobs = Jobs::new(InProcessBackend::new(1).register("nap", |_ctx, _input| async move {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     Ok(json!("rested"))
//! }))
//! .with_max_queued(100); // server-wide: at most 100 jobs wait for a slot
//! let client = jobs.group(2); // this client: at most 2 jobs queued or running
//! let batch = client.submit_batch([("nap", json!(1)), ("nap", json!(2))]).unwrap();
//! assert_eq!(
//!     client.submit_batch([("nap", json!(3))]).unwrap_err(),
//!     JobError::GroupFull { max_active: 2 }
//! );
//! assert_eq!(client.close(), 1); // the client left: the second job never starts
//! let results = batch.wait(tokio::time::Instant::now() + Duration::from_secs(5), |_| {}).await;
//! assert_eq!(results[0].1, Outcome::Done(json!("rested")));
//! assert_eq!(results[1].1, Outcome::Cancelled);
//! # }
//! ```
//!
//! The same flow in an axum app, with progress pushed to the client and a graceful shutdown:
//! `crates/socketlet/examples/jobs_axum.rs`; the `socketlet` binary's VM console
//! (`crates/cli/src/vm.rs`) is the complete one.
//!
//! # Rules the API keeps
//!
//! - Concurrency is bounded: jobs past the backend's limit wait their turn, first come first
//!   served, reported as queued.
//! - Queues are bounded: at most [`Jobs::max_queued`] jobs (default [`DEFAULT_MAX_QUEUED`]) wait
//!   for a slot, server-wide, and a [`JobGroup`] has at most [`JobGroup::max_active`] jobs queued
//!   or running. A batch that would pass either bound is refused whole, at once, with
//!   [`JobError::QueueFull`] or [`JobError::GroupFull`]: nothing is queued without limit, and a
//!   refused batch leaves nothing behind.
//! - A failure is reported the moment it happens, and never retried behind the caller's back.
//! - Cancelling ([`JobGroup::cancel_queued`], [`JobGroup::close`], [`Batch::cancel_queued`])
//!   touches only jobs that have not started: each ends at once as [`Outcome::Cancelled`] (event
//!   [`JobEventKind::Cancelled`]), frees its place in the bounds, and never runs afterwards.
//!   Running jobs are never interrupted; they finish and report as usual.
//! - Nothing is cancelled behind the caller's back either: a batch whose deadline passed, or that
//!   was dropped, keeps its jobs going. A server cancels the queued jobs of a client that left by
//!   closing that client's group in its disconnect handler; results of jobs that still finish go
//!   nowhere (emits to a disconnected socket simply fail).
//! - [`Jobs::shutdown`] stops new submissions, fails the queued jobs at once ("jobs are shutting
//!   down"), lets running jobs finish within a grace period, then abandons the rest.
//!
//! # How this crate is built
//!
//! Everything is in this file but the pool of slots (`pool.rs`), in four layers:
//!
//! - **A job's life** (`JobCore`, shared by the [`JobRequest`] a backend holds, the
//!   [`JobContext`]s the job reports through, and weakly by its [`Batch`] and [`JobGroup`]): one
//!   atomic phase, *queued → running → ended* or *queued → cancelled*. Every transition is a
//!   compare-and-swap, so a job starts at most once, ends at most once, and a cancelled job can
//!   never start. The transition out of *queued* (or *running*) gives back the job's place in the
//!   bounds; a job whose request is dropped without an end (abandoned at shutdown) gives it back
//!   when the last handle goes.
//! - **Bounds**: [`Jobs`] counts the jobs queued server-wide and a [`JobGroup`] those queued or
//!   running in it; a submission reserves room for the whole batch in both counters (a
//!   compare-and-swap against the limit) before anything reaches the backend.
//! - **Events**: each batch has one channel, in order. Lifecycle events (started, done, failed,
//!   cancelled: at most three per job) are never dropped; progress is lossy, with a budget per
//!   batch ([`JobContext::progress`]). So a batch's queue is bounded by its size. [`Batch::wait`]
//!   reads it until every job ended or the deadline.
//! - **Backends**: the [`JobBackend`] trait (`knows`, `submit`, `cancel`, `shutdown`) and the
//!   in-process one, [`InProcessBackend`]: a [`JobPool`] (`pool.rs`), a FIFO queue of requests
//!   and at most `max_concurrent` tokio tasks; when a task ends, its slot goes to the next
//!   request that is not cancelled. A backend whose jobs run elsewhere can bound its jobs in
//!   flight with a [`JobPool`] too (socketlet-dramatiq does). A distributed backend (a broker, workers elsewhere) implements the same trait: it calls
//!   [`JobRequest::start`] when a worker takes the job, runs it only when that returns `true`,
//!   and calls [`JobRequest::finish`] with the result.
//!
//! This crate knows nothing of Socket.IO; `socketlet` does not depend on it, and it does not
//! depend on `socketlet`.

mod pool;

pub use pool::{JobPool, JobRunner};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A boxed future that can move between threads (what [`JobBackend::shutdown`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many jobs may wait for a slot across a whole [`Jobs`] unless
/// [`Jobs::with_max_queued`] says otherwise. A queued job costs its input and a few hundred
/// bytes of bookkeeping, so this is a few megabytes at most for inputs of a few kilobytes.
pub const DEFAULT_MAX_QUEUED: usize = 1024;

/// Room for progress events per job in a batch's queue; progress past it is dropped until the
/// reader catches up (see [`JobContext::progress`]).
const EVENTS_PER_JOB: usize = 16;

/// A job's id, unique within a [`Jobs`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a job ended, or where it was when the deadline passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// It finished with this result.
    Done(Value),
    /// It failed with this message.
    Failed(String),
    /// It was cancelled before it started; it never runs.
    Cancelled,
    /// It was still running at the deadline (it goes on; its end is no longer awaited).
    Running,
    /// It had not started at the deadline (waiting for a free slot; it still may start later,
    /// unless it is cancelled).
    Queued,
}

/// Something that happened to a job of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    /// The job.
    pub job: JobId,
    /// What happened.
    #[serde(flatten)]
    pub kind: JobEventKind,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEventKind {
    /// The job got a slot and started.
    Started,
    /// The job reported progress.
    Progress {
        /// From 0 to 1.
        fraction: f32,
        /// What it is doing.
        message: String,
    },
    /// The job finished.
    Done {
        /// Its result.
        result: Value,
    },
    /// The job failed.
    Failed {
        /// Why.
        error: String,
    },
    /// The job was cancelled before it started; it never runs.
    Cancelled,
}

/// Why a batch could not be submitted. A refused batch submits nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// No job of that kind is known to the backend.
    UnknownKind(String),
    /// The jobs are shutting down and take no new work.
    ShuttingDown,
    /// The batch would make more than `max_queued` jobs wait for a slot, server-wide
    /// ([`Jobs::with_max_queued`]).
    QueueFull {
        /// The server-wide bound.
        max_queued: usize,
    },
    /// The batch would give its group more than `max_active` jobs queued or running
    /// ([`Jobs::group`]).
    GroupFull {
        /// The group's bound.
        max_active: usize,
    },
    /// The group was closed ([`JobGroup::close`]) and takes no more jobs.
    GroupClosed,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::UnknownKind(k) => write!(f, "no job of kind {k:?}"),
            JobError::ShuttingDown => f.write_str("jobs are shutting down"),
            JobError::QueueFull { max_queued } => write!(
                f,
                "the job queue is full (at most {max_queued} jobs may wait at once); try again later"
            ),
            JobError::GroupFull { max_active } => write!(
                f,
                "too many jobs in progress (at most {max_active} may be queued or running at once)"
            ),
            JobError::GroupClosed => f.write_str("this group of jobs is closed"),
        }
    }
}

impl std::error::Error for JobError {}

// A job's phases. Transitions: QUEUED -> RUNNING -> ENDED, QUEUED -> ENDED (failed before it
// started, e.g. at shutdown), QUEUED -> CANCELLED.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ENDED: u8 = 2;
const CANCELLED: u8 = 3;

/// The server-wide count of queued jobs and its bound, and the counts behind [`JobStats`].
#[derive(Debug, Default)]
struct QueueBound {
    queued: AtomicUsize,
    max_queued: AtomicUsize,
    running: AtomicUsize,
    done: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

/// How many jobs of a [`Jobs`] are in each state: now (queued, running) and since it was made
/// (done, failed, cancelled). For metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStats {
    /// Waiting for a slot now.
    pub queued: usize,
    /// Running now.
    pub running: usize,
    /// Finished with a result.
    pub done: u64,
    /// Failed (an error, or abandoned at shutdown).
    pub failed: u64,
    /// Cancelled before they started.
    pub cancelled: u64,
}

/// A group's count of queued and running jobs, its bound, and its jobs (to cancel them).
#[derive(Debug)]
struct GroupInner {
    active: AtomicUsize,
    max_active: usize,
    /// The group's jobs still alive when last pruned; the lock also orders `close` against
    /// submissions (a batch is either refused or registered before the group closes).
    members: Mutex<Members>,
}

#[derive(Debug, Default)]
struct Members {
    closed: bool,
    jobs: Vec<Weak<JobCore>>,
}

/// Progress events of a batch waiting in its queue, and how many may.
#[derive(Debug)]
struct ProgressBudget {
    in_queue: AtomicUsize,
    max: usize,
}

/// One job's shared state: see "How this crate is built".
struct JobCore {
    id: JobId,
    phase: AtomicU8,
    events: mpsc::UnboundedSender<JobEvent>,
    progress: Arc<ProgressBudget>,
    queue: Arc<QueueBound>,
    group: Option<Arc<GroupInner>>,
}

impl JobCore {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn send(&self, kind: JobEventKind) {
        // Fails only when nobody reads the batch any more.
        let _ = self.events.send(JobEvent {
            job: self.id.clone(),
            kind,
        });
    }

    /// Gives back the job's place in the bounds as it leaves phase `from`.
    fn release(&self, from: u8) {
        match from {
            QUEUED => {
                self.queue.queued.fetch_sub(1, Ordering::AcqRel);
            }
            RUNNING => {
                self.queue.running.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        if from == QUEUED || from == RUNNING {
            if let Some(group) = &self.group {
                group.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn start(&self) -> bool {
        if self
            .phase
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // No longer queued; still counted in its group, which bounds queued and running jobs.
        self.queue.queued.fetch_sub(1, Ordering::AcqRel);
        self.queue.running.fetch_add(1, Ordering::AcqRel);
        self.send(JobEventKind::Started);
        true
    }

    fn finish(&self, kind: JobEventKind) {
        let ended = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p == QUEUED || p == RUNNING).then_some(ENDED)
            });
        if let Ok(from) = ended {
            self.release(from);
            let total = match kind {
                JobEventKind::Done { .. } => &self.queue.done,
                _ => &self.queue.failed,
            };
            total.fetch_add(1, Ordering::Relaxed);
            self.send(kind);
        }
    }

    fn cancel(&self) -> bool {
        if self
            .phase
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.release(QUEUED);
        self.queue.cancelled.fetch_add(1, Ordering::Relaxed);
        self.send(JobEventKind::Cancelled);
        true
    }
}

impl Drop for JobCore {
    fn drop(&mut self) {
        // Abandoned without an end (a backend dropped it, or shutdown aborted it): its place in
        // the bounds goes back. No event: its batch sees the channel close.
        let phase = *self.phase.get_mut();
        if phase == QUEUED || phase == RUNNING {
            self.queue.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.release(phase);
    }
}

/// Where a running job reports to. Progress is lossy (when the batch's reader falls behind, the
/// newest progress is dropped until it catches up); the start and the end of a job are never
/// dropped.
#[derive(Clone)]
pub struct JobContext {
    core: Arc<JobCore>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.core.id)
            .field("phase", &self.core.phase())
            .finish()
    }
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.core.id
    }

    /// Reports progress: `fraction` from 0 to 1 (clamped) and a message. Ignored unless the job
    /// is running.
    pub fn progress(&self, fraction: f32, message: impl Into<String>) {
        let core = &self.core;
        if core.phase() != RUNNING || core.events.is_closed() {
            return;
        }
        let budget = &core.progress;
        let room = budget
            .in_queue
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget.max).then_some(n + 1)
            });
        if room.is_err() {
            return;
        }
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        core.send(JobEventKind::Progress {
            fraction,
            message: message.into(),
        });
    }
}

/// One job handed to a backend. The backend calls [`JobRequest::start`] when the job gets a slot
/// and runs it only if that returns `true`, then calls [`JobRequest::finish`] once with the
/// result. Dropping a request without finishing it abandons the job.
#[derive(Debug)]
pub struct JobRequest {
    /// Which kind of job.
    pub kind: String,
    /// Its input.
    pub input: Value,
    /// Where it reports (hand it to the job).
    pub context: JobContext,
}

impl JobRequest {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        self.context.id()
    }

    /// Claims the job for running and reports that it started. Returns `false` when the job was
    /// cancelled (or already ended): then the backend must drop it without running it.
    pub fn start(&self) -> bool {
        self.context.core.start()
    }

    /// Whether the job was cancelled before it started (such a job never runs).
    pub fn is_cancelled(&self) -> bool {
        self.context.core.phase() == CANCELLED
    }

    /// Reports the end of the job (a job that was never started ends too: e.g. failed at
    /// shutdown). Ignored when the job was cancelled or already ended.
    pub fn finish(self, result: Result<Value, String>) {
        let kind = match result {
            Ok(result) => JobEventKind::Done { result },
            Err(error) => JobEventKind::Failed { error },
        };
        self.context.core.finish(kind);
    }
}

/// Runs jobs. This crate has the in-process backend ([`InProcessBackend`]); a distributed one (a
/// queue on a broker, workers elsewhere) implements the same methods.
pub trait JobBackend: Send + Sync + 'static {
    /// Whether the backend knows jobs of `kind`.
    fn knows(&self, kind: &str) -> bool;

    /// Queues a job (see [`JobRequest`] for what the backend owes it). It must neither block nor
    /// wait for the job. The number of requests queued is bounded by the caller ([`Jobs`]).
    fn submit(&self, job: JobRequest);

    /// Tells the backend that `jobs` were cancelled before they started. Their
    /// [`JobRequest::start`] already returns `false` whatever the backend does; this lets it drop
    /// them from its queue at once. The default does nothing.
    fn cancel(&self, jobs: &[JobId]) {
        let _ = jobs;
    }

    /// Fails queued jobs, waits for running ones to end, up to `grace`; then abandons what is
    /// left.
    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()>;
}

type JobFn =
    Arc<dyn Fn(JobContext, Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Runs jobs as tokio tasks in this process, at most `max_concurrent` at a time; the others wait
/// in a first-in first-out queue (bounded by [`Jobs`]).
pub struct InProcessBackend {
    pool: Arc<JobPool<Kinds>>,
}

/// What jobs of each kind do.
#[derive(Default)]
struct Kinds(HashMap<String, JobFn>);

impl JobRunner for Kinds {
    fn knows(&self, kind: &str) -> bool {
        self.0.contains_key(kind)
    }

    fn run<'a>(
        &'a self,
        job: &'a JobRequest,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, String>> {
        let Some(f) = self.0.get(&job.kind) else {
            let error = format!("no job of kind {:?}", job.kind);
            return Box::pin(std::future::ready(Err(error)));
        };
        // A panicking job is a failed job, not a dead server.
        let run = AssertUnwindSafe(f(job.context.clone(), input)).catch_unwind();
        Box::pin(run.map(|result| result.unwrap_or_else(|_| Err("the job panicked".into()))))
    }
}

impl fmt::Debug for InProcessBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBackend")
            .field("kinds", &self.pool.runner().0.keys().collect::<Vec<_>>())
            .field("max_concurrent", &self.pool.max_in_flight())
            .finish()
    }
}

impl InProcessBackend {
    /// A backend running at most `max_concurrent` jobs at once (at least 1).
    pub fn new(max_concurrent: u32) -> Self {
        InProcessBackend {
            pool: JobPool::new(max_concurrent.max(1) as usize, Kinds::default(), None),
        }
    }

    /// Registers what jobs of `kind` do. The function gets the job's context (for progress) and
    /// its input, and returns the result or an error message. It must not block: blocking work
    /// belongs in `tokio::task::spawn_blocking`.
    pub fn register<F, Fut>(self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let f: JobFn = Arc::new(move |ctx, input| Box::pin(f(ctx, input)));
        let mut kinds = self.pool.runner().0.clone();
        kinds.insert(kind.into(), f);
        // A pool of its own for the new set of kinds (registering comes before any job).
        InProcessBackend {
            pool: JobPool::new(self.pool.max_in_flight(), Kinds(kinds), None),
        }
    }
}

impl JobBackend for InProcessBackend {
    fn knows(&self, kind: &str) -> bool {
        self.pool.runner().knows(kind)
    }

    fn submit(&self, job: JobRequest) {
        self.pool.submit(job);
    }

    fn cancel(&self, _jobs: &[JobId]) {
        // Whatever was cancelled leaves the queue now rather than when its turn comes.
        self.pool.drop_cancelled();
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        // Queued jobs fail at once ("shutting down"); running ones get the grace period.
        let drained = self.pool.shutdown(grace);
        Box::pin(async move {
            let left = drained.await;
            if left > 0 {
                tracing::warn!(left, "grace period over, abandoned jobs");
            }
        })
    }
}

/// The jobs of a server: submit batches, make groups, shut down. Cheap to clone; clones share
/// everything (the backend, the bounds, the ids).
#[derive(Clone)]
pub struct Jobs {
    backend: Arc<dyn JobBackend>,
    next_id: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    queue: Arc<QueueBound>,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs")
            .field("queued", &self.queued())
            .field("max_queued", &self.max_queued())
            .finish_non_exhaustive()
    }
}

/// Reserves room for `n` more in `counter` without passing `max`; whether it could.
fn reserve(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            c.checked_add(n).filter(|&total| total <= max)
        })
        .is_ok()
}

/// Cancels those of `jobs` that have not started and tells `backend`; how many it cancelled.
fn cancel_queued(jobs: &[Weak<JobCore>], backend: &dyn JobBackend) -> usize {
    let cancelled: Vec<JobId> = jobs
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|core| core.cancel())
        .map(|core| core.id.clone())
        .collect();
    if !cancelled.is_empty() {
        backend.cancel(&cancelled);
    }
    cancelled.len()
}

impl Jobs {
    /// Jobs run by `backend`, with at most [`DEFAULT_MAX_QUEUED`] waiting for a slot.
    pub fn new(backend: impl JobBackend) -> Jobs {
        Jobs {
            backend: Arc::new(backend),
            next_id: Arc::new(AtomicU64::new(1)),
            closing: Arc::default(),
            queue: Arc::new(QueueBound {
                max_queued: AtomicUsize::new(DEFAULT_MAX_QUEUED),
                ..QueueBound::default()
            }),
        }
    }

    /// Sets how many jobs may wait for a slot at once, server-wide (at least 1; for every clone).
    /// A job counts as queued from its submission until it starts, is cancelled or ends, so a
    /// batch larger than this is always refused.
    pub fn with_max_queued(self, max_queued: usize) -> Jobs {
        self.queue
            .max_queued
            .store(max_queued.max(1), Ordering::Release);
        self
    }

    /// How many jobs may wait for a slot at once, server-wide.
    pub fn max_queued(&self) -> usize {
        self.queue.max_queued.load(Ordering::Acquire)
    }

    /// How many jobs wait for a slot now, server-wide.
    pub fn queued(&self) -> usize {
        self.queue.queued.load(Ordering::Acquire)
    }

    /// How many jobs are in each state.
    pub fn stats(&self) -> JobStats {
        JobStats {
            queued: self.queue.queued.load(Ordering::Acquire),
            running: self.queue.running.load(Ordering::Acquire),
            done: self.queue.done.load(Ordering::Relaxed),
            failed: self.queue.failed.load(Ordering::Relaxed),
            cancelled: self.queue.cancelled.load(Ordering::Relaxed),
        }
    }

    /// A new group (e.g. one per client) that may have at most `max_active` jobs queued or
    /// running at once (at least 1), on top of the server-wide bound.
    pub fn group(&self, max_active: usize) -> JobGroup {
        JobGroup {
            jobs: self.clone(),
            inner: Arc::new(GroupInner {
                active: AtomicUsize::new(0),
                max_active: max_active.max(1),
                members: Mutex::default(),
            }),
        }
    }

    /// Submits jobs `(kind, input)` as one batch, bounded by [`Jobs::max_queued`] only. All are
    /// checked before any is queued: an unknown kind or a full queue submits nothing. Call it
    /// inside a tokio runtime: the in-process backend starts the jobs as tasks of it.
    pub fn submit_batch<I, K>(&self, jobs: I) -> Result<Batch, JobError>
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        self.submit(None, jobs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn submit(
        &self,
        group: Option<&Arc<GroupInner>>,
        jobs: Vec<(String, Value)>,
    ) -> Result<Batch, JobError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(JobError::ShuttingDown);
        }
        if let Some((kind, _)) = jobs.iter().find(|(k, _)| !self.backend.knows(k)) {
            return Err(JobError::UnknownKind(kind.clone()));
        }
        let n = jobs.len();
        // Held until the batch is registered in its group, so a `close` sees it or refuses it.
        let mut members = match group {
            Some(group) => {
                let members = group.members.lock().unwrap_or_else(|e| e.into_inner());
                if members.closed {
                    return Err(JobError::GroupClosed);
                }
                if !reserve(&group.active, n, group.max_active) {
                    return Err(JobError::GroupFull {
                        max_active: group.max_active,
                    });
                }
                Some(members)
            }
            None => None,
        };
        let max_queued = self.max_queued();
        if !reserve(&self.queue.queued, n, max_queued) {
            if let Some(group) = group {
                group.active.fetch_sub(n, Ordering::AcqRel);
            }
            return Err(JobError::QueueFull { max_queued });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(ProgressBudget {
            in_queue: AtomicUsize::new(0),
            max: n.max(1).saturating_mul(EVENTS_PER_JOB),
        });
        let mut ids = Vec::with_capacity(n);
        let mut cores = Vec::with_capacity(n);
        let mut requests = Vec::with_capacity(n);
        for (kind, input) in jobs {
            let id = JobId(format!(
                "job-{}",
                self.next_id.fetch_add(1, Ordering::Relaxed)
            ));
            let core = Arc::new(JobCore {
                id: id.clone(),
                phase: AtomicU8::new(QUEUED),
                events: tx.clone(),
                progress: progress.clone(),
                queue: self.queue.clone(),
                group: group.cloned(),
            });
            ids.push(id);
            cores.push(Arc::downgrade(&core));
            requests.push(JobRequest {
                kind,
                input,
                context: JobContext { core },
            });
        }
        drop(tx);
        if let Some(members) = &mut members {
            // Forget the jobs that are gone or over: the list stays within twice the bound.
            members.jobs.retain(|job| {
                job.upgrade()
                    .is_some_and(|core| matches!(core.phase(), QUEUED | RUNNING))
            });
            members.jobs.extend(cores.iter().cloned());
        }
        drop(members);
        for request in requests {
            self.backend.submit(request);
        }
        Ok(Batch {
            ids,
            events: rx,
            progress,
            canceller: Canceller {
                jobs: cores.into(),
                backend: self.backend.clone(),
            },
        })
    }

    /// Stops taking new batches, fails the queued jobs, lets running jobs finish within `grace`,
    /// then abandons the rest.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.store(true, Ordering::Release);
        self.backend.shutdown(grace).await;
    }
}

/// Jobs of one owner (e.g. one client), bounded together, cancelled together. Cheap to clone;
/// clones are the same group.
#[derive(Clone)]
pub struct JobGroup {
    jobs: Jobs,
    inner: Arc<GroupInner>,
}

impl fmt::Debug for JobGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobGroup")
            .field("active", &self.active())
            .field("max_active", &self.inner.max_active)
            .finish_non_exhaustive()
    }
}

impl JobGroup {
    /// Submits jobs `(kind, input)` as one batch of this group. All are checked before any is
    /// queued: an unknown kind, a closed or full group, or a full server-wide queue submits
    /// nothing.
    pub fn submit_batch<I, K>(&self, jobs: I) -> Result<Batch, JobError>
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        self.jobs.submit(
            Some(&self.inner),
            jobs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        )
    }

    /// How many jobs the group may have queued or running at once.
    pub fn max_active(&self) -> usize {
        self.inner.max_active
    }

    /// How many jobs of the group are queued or running now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Cancels the group's jobs that have not started (each ends as [`Outcome::Cancelled`] and
    /// never runs); running ones go on. Returns how many were cancelled.
    pub fn cancel_queued(&self) -> usize {
        let jobs = {
            let mut members = self.inner.members.lock().unwrap_or_else(|e| e.into_inner());
            members.jobs.retain(|job| job.strong_count() > 0);
            members.jobs.clone()
        };
        cancel_queued(&jobs, self.jobs.backend.as_ref())
    }

    /// Closes the group for good (its owner left): later submissions are refused with
    /// [`JobError::GroupClosed`], and its jobs that have not started are cancelled. Running
    /// ones go on. Returns how many were cancelled.
    pub fn close(&self) -> usize {
        let jobs = {
            let mut members = self.inner.members.lock().unwrap_or_else(|e| e.into_inner());
            members.closed = true;
            std::mem::take(&mut members.jobs)
        };
        cancel_queued(&jobs, self.jobs.backend.as_ref())
    }

    /// Whether [`JobGroup::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed
    }
}

/// Cancels the jobs of one batch that have not started, from anywhere (e.g. while another task
/// awaits the batch). Cheap to clone.
#[derive(Clone)]
pub struct Canceller {
    jobs: Arc<[Weak<JobCore>]>,
    backend: Arc<dyn JobBackend>,
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Canceller {
    /// Cancels the batch's jobs that have not started (each ends as [`Outcome::Cancelled`] and
    /// never runs); running ones go on. Returns how many were cancelled.
    pub fn cancel_queued(&self) -> usize {
        cancel_queued(&self.jobs, self.backend.as_ref())
    }
}

/// Jobs submitted together, awaited together. Dropping a batch does not cancel its jobs (see
/// [`Batch::cancel_queued`]).
pub struct Batch {
    ids: Vec<JobId>,
    events: mpsc::UnboundedReceiver<JobEvent>,
    progress: Arc<ProgressBudget>,
    canceller: Canceller,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// The ids of the jobs, in submission order.
    pub fn ids(&self) -> &[JobId] {
        &self.ids
    }

    /// Cancels the batch's jobs that have not started; running ones go on. Returns how many were
    /// cancelled. To cancel while awaiting the batch, use a [`Batch::canceller`].
    pub fn cancel_queued(&self) -> usize {
        self.canceller.cancel_queued()
    }

    /// A handle that cancels this batch's queued jobs from elsewhere.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Waits until every job ended or `deadline` passed, calling `on_event` for each event as it
    /// happens (so a failure is seen the moment it happens). Returns an outcome per job, in
    /// submission order. Jobs still going at the deadline keep going.
    pub async fn wait(
        mut self,
        deadline: Instant,
        mut on_event: impl FnMut(&JobEvent),
    ) -> Vec<(JobId, Outcome)> {
        let mut outcomes: HashMap<JobId, Outcome> = self
            .ids
            .iter()
            .map(|id| (id.clone(), Outcome::Queued))
            .collect();
        let mut open = self.ids.len();
        while open > 0 {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                // Deadline, or every job abandoned (shutdown past its grace period).
                Ok(None) | Err(_) => break,
            };
            if let JobEventKind::Progress { .. } = event.kind {
                self.progress.in_queue.fetch_sub(1, Ordering::AcqRel);
            }
            if let Some(slot) = outcomes.get_mut(&event.job) {
                let ended = match &event.kind {
                    JobEventKind::Started | JobEventKind::Progress { .. } => {
                        if *slot == Outcome::Queued {
                            *slot = Outcome::Running;
                        }
                        None
                    }
                    JobEventKind::Done { result } => Some(Outcome::Done(result.clone())),
                    JobEventKind::Failed { error } => Some(Outcome::Failed(error.clone())),
                    JobEventKind::Cancelled => Some(Outcome::Cancelled),
                };
                if let Some(ended) = ended {
                    if matches!(*slot, Outcome::Queued | Outcome::Running) {
                        open -= 1;
                    }
                    *slot = ended;
                }
            }
            on_event(&event);
        }
        self.ids
            .into_iter()
            .map(|id| {
                let outcome = outcomes.remove(&id).unwrap_or(Outcome::Queued);
                (id, outcome)
            })
            .collect()
    }
}
