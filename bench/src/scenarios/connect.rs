//! Scenario 2: connection rate.
//!
//! - `ws`: Socket.IO connects over WebSocket (TCP, upgrade, OPEN, CONNECT and its answer), the
//!   connections kept open until the end;
//! - `polling`: Engine.IO polling handshakes (one GET each) on `concurrency` keep-alive
//!   connections, like `wrk` would send them;
//! - `upgrade`: Socket.IO connects over polling (handshake, CONNECT, its answer) then the
//!   upgrade to WebSocket (probe, UPGRADE), kept open until the end.
//!
//! Kept connections are checked afterwards with one echo each (not measured).

use super::{check_alive, put_window, settle, Ctx};
use crate::client::{connect_upgrade, connect_ws, echo_once, polling_handshake, Ws};
use crate::http::HttpConn;
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Which handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConnectKind {
    /// Socket.IO connect over WebSocket.
    Ws,
    /// Engine.IO polling handshake (one GET).
    Polling,
    /// Socket.IO connect over polling, then the upgrade to WebSocket.
    Upgrade,
}

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The handshake.
    #[arg(long, value_enum, default_value = "ws")]
    pub(crate) kind: ConnectKind,
    /// Handshakes.
    #[arg(long, default_value_t = 5000)]
    pub(crate) count: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) in_flight: usize,
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &ConnectArgs, result: &mut RunResult) {
    result.param("kind", format!("{:?}", args.kind).to_lowercase());
    result.param("count", args.count);
    result.param("in_flight", args.in_flight);
    let rss_before = ctx.probe.server_rss_kib();
    match args.kind {
        ConnectKind::Polling => polling(ctx, args, result, rss_before).await,
        ConnectKind::Ws | ConnectKind::Upgrade => kept(ctx, args, result, rss_before).await,
    }
    check_alive(result, &ctx.probe);
}

/// Server RSS growth per handshake, the sessions (and kept connections) still open.
async fn put_rss(ctx: &Ctx, rss_before: Option<u64>, result: &mut RunResult) {
    let Some(before) = rss_before else {
        return;
    };
    let after = settle(ctx, Duration::from_millis(500)).await;
    let count = result.metrics.get("count").copied().unwrap_or(0.0);
    result.metric("rss_before_kib", before as f64);
    result.metric("rss_after_kib", after as f64);
    if count > 0.0 {
        result.metric("rss_per_op_kib", (after as f64 - before as f64) / count);
    }
}

async fn kept(ctx: &Ctx, args: &ConnectArgs, result: &mut RunResult, rss_before: Option<u64>) {
    let until = ctx.budget_end();
    let before = ctx.probe.sample();
    let many = ctx
        .run_many(args.count, args.in_flight, until, |_| async {
            match args.kind {
                ConnectKind::Upgrade => connect_upgrade(&ctx.target).await,
                _ => connect_ws(&ctx.target).await,
            }
        })
        .await;
    let after = ctx.probe.sample();
    let (outcomes, skipped) = (many.done, many.late);
    result.metric("cut", many.cut as f64);
    let mut kept: Vec<Ws> = Vec::with_capacity(outcomes.len());
    let mut times = Vec::with_capacity(outcomes.len());
    for (r, us) in outcomes {
        match r {
            Ok(ws) => {
                kept.push(ws);
                times.push(us);
            }
            Err(e) => result.fail(format!("connect: {e}")),
        }
    }
    if skipped > 0 {
        result.fail(format!("{skipped} handshakes not attempted: time is up"));
    }
    put_window(result, &before.until(&after), kept.len() as f64, &ctx.probe);
    result.metric(
        "failed",
        (args.count - skipped - many.cut - kept.len()) as f64,
    );
    Samples::new(times).put(result, "connect");
    put_rss(ctx, rss_before, result).await;

    // Every kept connection must still carry an event and its ack.
    let payload = "check";
    let checks: Vec<Result<(), BoxError>> = {
        use futures_util::StreamExt;
        futures_util::stream::iter(kept.iter_mut())
            .map(|ws| ctx.timed(echo_once(ws, 1, payload)))
            .buffer_unordered(ctx.concurrency.max(1))
            .collect()
            .await
    };
    let bad = checks.iter().filter(|c| c.is_err()).count();
    if let Some(Err(e)) = checks.into_iter().find(|c| c.is_err()) {
        result.fail(format!("{bad} connections failed the echo check, e.g. {e}"));
    }
    result.metric("check_failed", bad as f64);
}

async fn polling(ctx: &Ctx, args: &ConnectArgs, result: &mut RunResult, rss_before: Option<u64>) {
    let tickets = AtomicUsize::new(0);
    let until = ctx.budget_end();
    let worker = || async {
        let mut conn = HttpConn::new(ctx.target.clone());
        let mut times = Vec::new();
        let mut errors: Vec<BoxError> = Vec::new();
        while !ctx.late()
            && !Ctx::spent(until)
            && tickets.fetch_add(1, Ordering::Relaxed) < args.count
        {
            let t = Instant::now();
            match ctx.timed(polling_handshake(&mut conn)).await {
                Ok(_) => times.push(t.elapsed().as_micros() as u64),
                Err(e) => errors.push(e),
            }
        }
        (times, errors)
    };
    let before = ctx.probe.sample();
    let outcomes =
        futures_util::future::join_all((0..args.in_flight.max(1)).map(|_| worker())).await;
    let after = ctx.probe.sample();
    let mut times = Vec::new();
    let mut failed = 0usize;
    for (t, errors) in outcomes {
        times.extend(t);
        failed += errors.len();
        for e in errors {
            result.fail(format!("handshake: {e}"));
        }
    }
    let cut = if Ctx::spent(until) {
        args.count.saturating_sub(times.len() + failed)
    } else {
        0
    };
    result.metric("cut", cut as f64);
    if times.len() + failed + cut < args.count {
        result.fail(format!(
            "{} handshakes not attempted: time is up",
            args.count - times.len() - failed
        ));
    }
    put_window(
        result,
        &before.until(&after),
        times.len() as f64,
        &ctx.probe,
    );
    result.metric("failed", failed as f64);
    Samples::new(times).put(result, "connect");
    put_rss(ctx, rss_before, result).await;
}
