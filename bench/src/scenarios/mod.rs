//! The scenarios. Each is bounded in count and time and stops by itself.

pub(crate) mod api;
pub(crate) mod broadcast;
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod echo;
pub(crate) mod idle;
pub(crate) mod polling;
pub(crate) mod recovery;
pub(crate) mod slow_post;
pub(crate) mod soak;

use crate::net::Target;
use crate::procfs::{Probe, Window};
use crate::stats::RunResult;
use crate::BoxError;
use futures_util::StreamExt;
use std::future::Future;
use std::time::{Duration, Instant};

/// What every scenario gets.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The server.
    pub(crate) target: Target,
    /// Its CPU and memory.
    pub(crate) probe: Probe,
    /// Connection handshakes in flight at once while setting up clients.
    pub(crate) concurrency: usize,
    /// Time allowed for one connection handshake or one operation.
    pub(crate) op_timeout: Duration,
    /// Nothing new starts after this.
    pub(crate) deadline: Instant,
    /// How long a measured phase may start new operations (none: until all are done). Cut
    /// phases are not failures; slow servers just do fewer operations.
    pub(crate) budget: Option<Duration>,
}

/// Outcomes of [`Ctx::run_many`].
pub(crate) struct Many<T> {
    /// Each started operation's outcome and duration in microseconds.
    pub(crate) done: Vec<(Result<T, BoxError>, u64)>,
    /// Operations not started because the scenario's time was up (a failure).
    pub(crate) late: usize,
    /// Operations not started because the phase's budget was spent (not a failure).
    pub(crate) cut: usize,
}

impl<T> Many<T> {
    /// The clients that connected, when all `wanted` did; otherwise the failures are recorded
    /// (with whether the server is still alive) and `None` is returned.
    pub(crate) fn all_connected(
        self,
        wanted: usize,
        result: &mut RunResult,
        probe: &Probe,
    ) -> Option<Vec<T>> {
        let mut clients = Vec::with_capacity(wanted);
        for (r, _) in self.done {
            match r {
                Ok(c) => clients.push(c),
                Err(e) => result.fail(format!("connect: {e}")),
            }
        }
        if self.late > 0 || clients.len() < wanted || clients.is_empty() {
            result.fail(format!(
                "only {} of {} clients connected",
                clients.len(),
                wanted
            ));
            check_alive(result, probe);
            return None;
        }
        Some(clients)
    }
}

impl Ctx {
    /// Whether the scenario's time is up.
    pub(crate) fn late(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Runs `op` with the per-operation timeout.
    pub(crate) async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, BoxError>>,
    ) -> Result<T, BoxError> {
        match tokio::time::timeout(self.op_timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {:?}", self.op_timeout).into()),
        }
    }

    /// When a measured phase starting now must stop starting operations.
    pub(crate) fn budget_end(&self) -> Option<Instant> {
        self.budget.map(|b| Instant::now() + b)
    }

    /// Whether a phase that ends at `until` (see [`Ctx::budget_end`]) is over.
    pub(crate) fn spent(until: Option<Instant>) -> bool {
        until.is_some_and(|u| Instant::now() >= u)
    }

    /// Runs `n` operations, at most `concurrency` at once, none started after the deadline
    /// or after `until`.
    pub(crate) async fn run_many<T, F, Fut>(
        &self,
        n: usize,
        concurrency: usize,
        until: Option<Instant>,
        op: F,
    ) -> Many<T>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        enum Out<T> {
            Done(Result<T, BoxError>, u64),
            Late,
            Cut,
        }
        let outcomes: Vec<Out<T>> = futures_util::stream::iter(0..n)
            .map(|i| {
                let fut = op(i);
                async move {
                    if self.late() {
                        return Out::Late;
                    }
                    if Ctx::spent(until) {
                        return Out::Cut;
                    }
                    let t = Instant::now();
                    let r = self.timed(fut).await;
                    Out::Done(r, t.elapsed().as_micros() as u64)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut many = Many {
            done: Vec::with_capacity(n),
            late: 0,
            cut: 0,
        };
        for o in outcomes {
            match o {
                Out::Done(r, us) => many.done.push((r, us)),
                Out::Late => many.late += 1,
                Out::Cut => many.cut += 1,
            }
        }
        many
    }
}

/// Records the usual figures of a measured window of `ops` operations: `count`, `secs`,
/// `per_sec`, server and generator CPU per operation (`server_cpu_us_per_op`,
/// `gen_cpu_us_per_op`; `aux_cpu_us_per_op` for the auxiliary processes: a broker, a backend),
/// the server's share of its CPU spent in the kernel (`server_kernel_pct`),
/// and the other processes' share of the machine (`other_cpu_pct`).
pub(crate) fn put_window(result: &mut RunResult, w: &Window, ops: f64, probe: &Probe) {
    result.metric("count", ops);
    result.metric("secs", w.secs);
    if w.secs > 0.0 {
        result.metric("per_sec", ops / w.secs);
    }
    if ops > 0.0 {
        if probe.has_server() {
            result.metric("server_cpu_us_per_op", w.server_cpu * 1e6 / ops);
            if w.server_cpu > 0.0 {
                result.metric("server_kernel_pct", 100.0 * w.server_sys_cpu / w.server_cpu);
            }
        }
        result.metric("gen_cpu_us_per_op", w.self_cpu * 1e6 / ops);
        if probe.has_aux() {
            result.metric("aux_cpu_us_per_op", w.aux_cpu * 1e6 / ops);
        }
    }
    if probe.has_server() {
        result.metric("server_cpu_secs", w.server_cpu);
    }
    result.metric("gen_cpu_secs", w.self_cpu);
    if w.secs > 0.0 {
        // Shares of one core over the window.
        if probe.has_server() {
            result.metric("server_cpu_pct", 100.0 * w.server_cpu / w.secs);
        }
        result.metric("gen_cpu_pct", 100.0 * w.self_cpu / w.secs);
    }
    result.metric("other_cpu_pct", w.other_cpu_pct);
}

/// Waits at least `min` (at most 4 times that) until the server's RSS stops moving; returns it
/// in KiB.
pub(crate) async fn settle(ctx: &Ctx, min: Duration) -> u64 {
    let start = Instant::now();
    let mut last = ctx.probe.server_rss_kib().unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = ctx.probe.server_rss_kib().unwrap_or(0);
        let still = (now as f64 - last as f64).abs() <= 0.002 * now as f64;
        if (start.elapsed() >= min && still) || start.elapsed() >= min * 4 || ctx.late() {
            return now;
        }
        last = now;
    }
}

/// Marks the run failed if the server process is gone.
pub(crate) fn check_alive(result: &mut RunResult, probe: &Probe) {
    if !probe.server_alive() {
        result.fail("the server process exited during the run");
    }
}
