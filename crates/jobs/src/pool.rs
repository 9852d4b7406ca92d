//! [`JobPool`]: the part of a backend that bounds the jobs in flight. At most `max_in_flight`
//! tokio tasks, each running one job; the other requests wait in a first-in first-out queue.
//! When a task ends (or is aborted), its slot goes to the next request that is not cancelled.
//! [`crate::InProcessBackend`] is one around its job functions; socketlet-dramatiq's backend is
//! one around sending a message and awaiting its result.

use crate::{BoxFuture, JobRequest};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// What a [`JobPool`] does with a job once it has a slot.
pub trait JobRunner: Send + Sync + 'static {
    /// Whether it runs jobs of `kind`.
    fn knows(&self, kind: &str) -> bool;

    /// Runs `job` (already started) with its `input`; the pool finishes the job with the result.
    fn run<'a>(&'a self, job: &'a JobRequest, input: Value)
        -> BoxFuture<'a, Result<Value, String>>;
}

/// Jobs run by a [`JobRunner`], at most `max_in_flight` at once; see the module's documentation.
pub struct JobPool<R> {
    max_in_flight: usize,
    runner: R,
    runtime: Option<Handle>,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<JobRequest>,
    in_flight: usize,
    closing: bool,
    tasks: JoinSet<()>,
}

impl<R: JobRunner> JobPool<R> {
    /// A pool of `max_in_flight` slots whose tasks run on `runtime`; with `None`, on the runtime
    /// current where a slot is given (without one, the jobs wait until a submission from within
    /// a runtime).
    pub fn new(max_in_flight: usize, runner: R, runtime: Option<Handle>) -> Arc<Self> {
        Arc::new(JobPool {
            max_in_flight,
            runner,
            runtime,
            state: Mutex::default(),
        })
    }

    /// The runner.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// How many jobs may run at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// How many jobs run now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// How many jobs wait for a slot.
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, which runs when it gets a slot. Fails it at once when the runner does not
    /// know its kind, or once the pool is shutting down ("jobs are shutting down").
    pub fn submit(self: &Arc<Self>, job: JobRequest) {
        if !self.runner.knows(&job.kind) {
            let error = format!("no job of kind {:?}", job.kind);
            return job.finish(Err(error));
        }
        let mut state = self.lock();
        if state.closing {
            drop(state);
            return job.finish(Err("jobs are shutting down".into()));
        }
        state.queue.push_back(job);
        self.pump(&mut state);
    }

    /// Drops the cancelled jobs from the queue now rather than when their turn comes (they
    /// would never run anyway).
    pub fn drop_cancelled(&self) {
        self.lock().queue.retain(|job| !job.is_cancelled());
    }

    /// Stops giving slots: the queued jobs fail at once ("jobs are shutting down"), later
    /// submissions too. The future waits for the jobs in flight up to `grace`, then aborts what
    /// is left, and gives how many it abandoned so.
    pub fn shutdown(&self, grace: Duration) -> BoxFuture<'static, usize> {
        let (queued, mut tasks) = {
            let mut state = self.lock();
            state.closing = true;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.tasks),
            )
        };
        for job in queued {
            job.finish(Err("jobs are shutting down".into()));
        }
        Box::pin(async move {
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_ok() {
                return 0;
            }
            let left = tasks.len();
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            left
        })
    }

    /// Starts queued jobs while there are free slots.
    fn pump(self: &Arc<Self>, state: &mut PoolState) {
        // Reap finished tasks, so the set holds only the work in flight.
        while state.tasks.try_join_next().is_some() {}
        if state.closing {
            return;
        }
        let Some(runtime) = self.runtime.clone().or_else(|| Handle::try_current().ok()) else {
            return;
        };
        while state.in_flight < self.max_in_flight {
            let Some(mut job) = state.queue.pop_front() else {
                break;
            };
            // The point of no return: a job cancelled before this never runs (it was already
            // reported as cancelled).
            if !job.start() {
                continue;
            }
            state.in_flight += 1;
            let pool = self.clone();
            state.tasks.spawn_on(
                async move {
                    // Made here, not before the spawn: a task dropped unpolled (its runtime shut
                    // down) must not take the pool's lock, which the spawn holds. It gives the
                    // slot back (and starts the next job) however the task ends.
                    let slot = Slot(pool);
                    let input = std::mem::take(&mut job.input);
                    let result = slot.0.runner.run(&job, input).await;
                    job.finish(result);
                },
                &runtime,
            );
        }
    }
}

/// A slot in flight, given back (and the next job started) when its task ends or is aborted.
struct Slot<R: JobRunner>(Arc<JobPool<R>>);

impl<R: JobRunner> Drop for Slot<R> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        self.0.pump(&mut state);
    }
}
