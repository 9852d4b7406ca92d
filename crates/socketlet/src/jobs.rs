//! Background jobs whose progress and results go back to the client that asked for them.
//!
//! The pattern this replaces: `start_background_task(f)` where `f` sends one task per item to a
//! queue and then blocks on `get_result(block=True, timeout=...)` for each, freezing an eventlet
//! server until the standard library is monkey-patched. Here nothing blocks: a [`Batch`] of jobs
//! runs on a [`JobBackend`], its progress arrives as [`JobEvent`]s, and the caller awaits the
//! whole batch under **one** deadline, getting an [`Outcome`] per job.
//!
//! ```
//! use socketlet::jobs::{Jobs, InProcessBackend, Outcome};
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
//! The same flow in an axum app, with progress pushed to the client and a graceful shutdown:
//! `crates/socketlet/examples/jobs_axum.rs`.
//!
//! Rules the API keeps:
//! - concurrency is bounded (jobs past the limit wait their turn, reported as queued);
//! - a failure is reported the moment it happens, and never retried behind the caller's back;
//! - a client that disconnects does not cancel its jobs (emits to a disconnected socket simply
//!   fail, so nothing reaches a dead socket);
//! - [`Jobs::shutdown`] stops new submissions, lets running jobs finish within a grace period,
//!   then abandons the rest.

use crate::adapter::BoxFuture;
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

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
    /// It was still running at the deadline (it goes on; its end is no longer awaited).
    Running,
    /// It had not started at the deadline (waiting for a free slot).
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
}

/// Why a batch could not be submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// No job of that kind is known to the backend.
    UnknownKind(String),
    /// The jobs are shutting down and take no new work.
    ShuttingDown,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::UnknownKind(k) => write!(f, "no job of kind {k:?}"),
            JobError::ShuttingDown => f.write_str("jobs are shutting down"),
        }
    }
}

impl std::error::Error for JobError {}

/// Where a running job reports to. Progress is lossy (when the batch's reader falls behind, the
/// newest progress is dropped until it catches up); the end of a job is never dropped.
#[derive(Debug, Clone)]
pub struct JobContext {
    id: JobId,
    events: mpsc::Sender<JobEvent>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// Reports progress: `fraction` from 0 to 1 (clamped) and a message.
    pub fn progress(&self, fraction: f32, message: impl Into<String>) {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let _ = self.events.try_send(JobEvent {
            job: self.id.clone(),
            kind: JobEventKind::Progress {
                fraction,
                message: message.into(),
            },
        });
    }

    async fn report(&self, kind: JobEventKind) {
        let event = JobEvent {
            job: self.id.clone(),
            kind,
        };
        // Waits for room: these events are never dropped. A batch nobody awaits any more has
        // dropped its receiver, and then this returns at once.
        let _ = self.events.send(event).await;
    }
}

/// One job handed to a backend.
#[derive(Debug)]
pub struct JobRequest {
    /// Which kind of job.
    pub kind: String,
    /// Its input.
    pub input: Value,
    /// Where it reports. The backend calls [`JobRequest::started`] when it starts the job and
    /// [`JobRequest::finish`] exactly once when it ends.
    pub context: JobContext,
}

impl JobRequest {
    /// Reports that the job started.
    pub async fn started(&self) {
        self.context.report(JobEventKind::Started).await;
    }

    /// Reports the end of the job.
    pub async fn finish(self, result: Result<Value, String>) {
        let kind = match result {
            Ok(result) => JobEventKind::Done { result },
            Err(error) => JobEventKind::Failed { error },
        };
        self.context.report(kind).await;
    }
}

/// Runs jobs. This crate has the in-process backend ([`InProcessBackend`]); a distributed one (a
/// queue on Redis, workers elsewhere) implements the same three methods.
pub trait JobBackend: Send + Sync + 'static {
    /// Whether the backend knows jobs of `kind`.
    fn knows(&self, kind: &str) -> bool;

    /// Starts (or queues) a job. It must neither block nor wait for the job.
    fn submit(&self, job: JobRequest);

    /// Waits for running and queued jobs to end, up to `grace`; then abandons what is left.
    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()>;
}

type JobFn =
    Arc<dyn Fn(JobContext, Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Runs jobs as tokio tasks in this process, at most `max_concurrent` at a time.
pub struct InProcessBackend {
    kinds: HashMap<String, JobFn>,
    slots: Arc<Semaphore>,
    max_concurrent: u32,
    tasks: Mutex<JoinSet<()>>,
}

impl fmt::Debug for InProcessBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBackend")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

impl InProcessBackend {
    /// A backend running at most `max_concurrent` jobs at once (at least 1).
    pub fn new(max_concurrent: u32) -> Self {
        let max_concurrent = max_concurrent.max(1);
        InProcessBackend {
            kinds: HashMap::new(),
            slots: Arc::new(Semaphore::new(max_concurrent as usize)),
            max_concurrent,
            tasks: Mutex::default(),
        }
    }

    /// Registers what jobs of `kind` do. The function gets the job's context (for progress) and
    /// its input, and returns the result or an error message. It must not block: blocking work
    /// belongs in `tokio::task::spawn_blocking`.
    pub fn register<F, Fut>(mut self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let f: JobFn = Arc::new(move |ctx, input| Box::pin(f(ctx, input)));
        self.kinds.insert(kind.into(), f);
        self
    }
}

impl JobBackend for InProcessBackend {
    fn knows(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    fn submit(&self, mut job: JobRequest) {
        let f = self.kinds.get(&job.kind).cloned();
        let slots = self.slots.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished tasks, so the set holds only the work in flight.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let Some(f) = f else {
                let error = format!("no job of kind {:?}", job.kind);
                return job.finish(Err(error)).await;
            };
            let Ok(_slot) = slots.acquire_owned().await else {
                return job.finish(Err("jobs are shutting down".into())).await;
            };
            job.started().await;
            let input = std::mem::take(&mut job.input);
            // A panicking job is a failed job, not a dead server.
            let result = AssertUnwindSafe(f(job.context.clone(), input))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err("the job panicked".into()));
            job.finish(result).await;
        });
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        // Queued jobs fail at once ("shutting down"); running ones get the grace period.
        self.slots.close();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        Box::pin(async move {
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(left = tasks.len(), "grace period over, abandoning jobs");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        })
    }
}

/// The jobs of a server: submit batches, shut down. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    backend: Arc<dyn JobBackend>,
    next_id: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// Room for events per job in a batch's queue; progress past it is dropped until the reader
/// catches up (see [`JobContext::progress`]).
const EVENTS_PER_JOB: usize = 16;

impl Jobs {
    /// Jobs run by `backend`.
    pub fn new(backend: impl JobBackend) -> Jobs {
        Jobs {
            backend: Arc::new(backend),
            next_id: Arc::new(AtomicU64::new(1)),
            closing: Arc::default(),
        }
    }

    /// Submits jobs `(kind, input)` as one batch. All are checked before any starts: an unknown
    /// kind submits nothing.
    pub fn submit_batch<I, K>(&self, jobs: I) -> Result<Batch, JobError>
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        if self.closing.load(Ordering::Acquire) {
            return Err(JobError::ShuttingDown);
        }
        let jobs: Vec<(String, Value)> = jobs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        if let Some((kind, _)) = jobs.iter().find(|(k, _)| !self.backend.knows(k)) {
            return Err(JobError::UnknownKind(kind.clone()));
        }
        let (tx, rx) = mpsc::channel((jobs.len() * EVENTS_PER_JOB).max(1));
        let mut ids = Vec::with_capacity(jobs.len());
        for (kind, input) in jobs {
            let id = JobId(format!(
                "job-{}",
                self.next_id.fetch_add(1, Ordering::Relaxed)
            ));
            ids.push(id.clone());
            self.backend.submit(JobRequest {
                kind,
                input,
                context: JobContext {
                    id,
                    events: tx.clone(),
                },
            });
        }
        Ok(Batch { ids, events: rx })
    }

    /// Stops taking new batches, lets running jobs finish within `grace`, then abandons the rest.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.store(true, Ordering::Release);
        self.backend.shutdown(grace).await;
    }
}

/// Jobs submitted together, awaited together.
#[derive(Debug)]
pub struct Batch {
    ids: Vec<JobId>,
    events: mpsc::Receiver<JobEvent>,
}

impl Batch {
    /// The ids of the jobs, in submission order.
    pub fn ids(&self) -> &[JobId] {
        &self.ids
    }

    /// Waits until every job ended or `deadline` passed, calling `on_event` for each event as it
    /// happens (so a failure is seen the moment it happens). Returns an outcome per job, in
    /// submission order. Jobs still going at the deadline keep running.
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
            if let Some(slot) = outcomes.get_mut(&event.job) {
                match &event.kind {
                    JobEventKind::Started | JobEventKind::Progress { .. } => {
                        if *slot == Outcome::Queued {
                            *slot = Outcome::Running;
                        }
                    }
                    JobEventKind::Done { result } => {
                        *slot = Outcome::Done(result.clone());
                        open -= 1;
                    }
                    JobEventKind::Failed { error } => {
                        *slot = Outcome::Failed(error.clone());
                        open -= 1;
                    }
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
