//! Scenario 7: emits through the `socketlet` binary's server API (`POST /api/emit`).
//!
//! `clients` WebSocket clients connect and stay; then `conns` keep-alive HTTP connections POST
//! `{"event":"broadcast","args":[<n>]}` to every socket of `/`, one request at a time each, until
//! `emits` are done; the run ends when every client has every emit. Figures: emits per second
//! (the window ends at the last delivery), server CPU per emit and per delivery, the POST's
//! latency.

use super::broadcast::{receiver, Board};
use super::{check_alive, put_window, Ctx};
use crate::client::connect_ws;
use crate::http::HttpConn;
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ApiArgs {
    /// Receiving clients.
    #[arg(long, default_value_t = 100)]
    pub(crate) clients: usize,
    /// Keep-alive HTTP connections POSTing at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) conns: usize,
    /// Emits in all.
    #[arg(long, default_value_t = 5000)]
    pub(crate) emits: usize,
    /// The API key.
    #[arg(long, default_value = "bench-key")]
    pub(crate) api_key: String,
    /// The emit endpoint's path.
    #[arg(long, default_value = "/api/emit")]
    pub(crate) path: String,
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &ApiArgs, result: &mut RunResult) {
    result.param("clients", args.clients);
    result.param("conns", args.conns);
    result.param("emits", args.emits);
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |_| {
            connect_ws(&ctx.target)
        })
        .await;
    let Some(clients) = many.all_connected(args.clients, result, &ctx.probe) else {
        return;
    };
    let board = Arc::new(Board::new(clients.len(), args.emits));
    let mut receivers = tokio::task::JoinSet::new();
    for ws in clients {
        receivers.spawn(receiver(ws, board.clone()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let tickets = AtomicUsize::new(0);
    let until = ctx.budget_end();
    let worker = || async {
        let mut conn = HttpConn::new(ctx.target.clone());
        let mut times = Vec::new();
        let mut error: Option<BoxError> = None;
        loop {
            if ctx.late() || Ctx::spent(until) {
                break;
            }
            let n = tickets.fetch_add(1, Ordering::Relaxed);
            if n >= args.emits {
                break;
            }
            let body = format!("{{\"event\":\"broadcast\",\"args\":[{n}]}}");
            let t = Instant::now();
            match ctx
                .timed(async {
                    let r = conn.post_json(&args.path, &args.api_key, &body).await?;
                    if r.status != 200 {
                        return Err(format!(
                            "HTTP {}: {:.120}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )
                        .into());
                    }
                    Ok(())
                })
                .await
            {
                Ok(()) => times.push(t.elapsed().as_micros() as u64),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        (times, error)
    };
    let before = ctx.probe.sample();
    let outcomes = futures_util::future::join_all((0..args.conns.max(1)).map(|_| worker())).await;
    let mut times = Vec::new();
    for (t, e) in outcomes {
        times.extend(t);
        if let Some(e) = e {
            result.fail(format!("emit: {e}"));
        }
    }
    let emits = times.len();
    // Every emit's deliveries (they were numbered 0..emits in the order of the tickets; the
    // ones not sent were never numbered past the last ticket taken).
    let drain = async {
        for i in 0..args.emits.min(tickets.load(Ordering::Relaxed)) {
            board.complete(i).await;
        }
    };
    if tokio::time::timeout(ctx.op_timeout, drain).await.is_err() {
        result.fail(format!(
            "{} of {} deliveries after {:?}",
            board.deliveries(),
            emits * board.clients,
            ctx.op_timeout
        ));
    }
    let after = ctx.probe.sample();
    receivers.abort_all();
    let window = before.until(&after);
    put_window(result, &window, emits as f64, &ctx.probe);
    let deliveries = board.deliveries();
    result.metric("deliveries", deliveries as f64);
    if window.secs > 0.0 {
        result.metric("deliveries_per_sec", deliveries as f64 / window.secs);
    }
    if deliveries > 0 && ctx.probe.has_server() {
        result.metric(
            "server_cpu_us_per_delivery",
            window.server_cpu * 1e6 / deliveries as f64,
        );
    }
    Samples::new(times).put(result, "post");
    check_alive(result, &ctx.probe);
}
