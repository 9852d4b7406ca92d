//! Scenario 1: idle connections, resident memory per connection.
//!
//! Connects `warmup` clients and lets the server settle, reads its RSS, connects `conns` more,
//! waits until the RSS stops moving, and divides the growth by `conns`. Every client stays
//! connected (answering heartbeats) until the end; polling clients keep a GET pending, as real
//! clients do. (In Engine.IO v3 the WebSocket clients send the heartbeat's PING every 20 s;
//! v3 polling clients are not supported here.)

use super::{check_alive, put_window, settle, Ctx};
use crate::client::{answer, connect_polling, connect_ws, recv, send};
use crate::http::HttpConn;
use crate::proto::{Eio, V3_PING_EVERY};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Which transport the idle clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum IdleTransport {
    /// WebSocket directly.
    Ws,
    /// Long-polling, with a GET pending.
    Polling,
}

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdleArgs {
    /// The transport.
    #[arg(long, value_enum, default_value = "ws")]
    pub(crate) transport: IdleTransport,
    /// Connections measured.
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: usize,
    /// Connections made (and kept) before the baseline reading.
    #[arg(long, default_value_t = 100)]
    pub(crate) warmup: usize,
    /// Least time to wait for the RSS to settle, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) settle_ms: u64,
}

struct Holders {
    stop: watch::Sender<bool>,
    dropped: Arc<AtomicUsize>,
}

impl Holders {
    fn new() -> Holders {
        Holders {
            stop: watch::channel(false).0,
            dropped: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Connects one client and leaves a task holding it.
    async fn connect(&self, ctx: &Ctx, transport: IdleTransport) -> Result<(), BoxError> {
        let mut stop = self.stop.subscribe();
        let dropped = self.dropped.clone();
        match transport {
            IdleTransport::Ws => {
                let mut ws = connect_ws(&ctx.target).await?;
                // A v3 client sends the heartbeat's PING itself.
                let v3 = ctx.target.eio() == Eio::V3;
                tokio::spawn(async move {
                    let mut heartbeat = tokio::time::interval_at(
                        tokio::time::Instant::now() + V3_PING_EVERY,
                        V3_PING_EVERY,
                    );
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            _ = heartbeat.tick(), if v3 => {
                                if send(&mut ws, "2".to_owned()).await.is_err() {
                                    break;
                                }
                            }
                            r = recv(&mut ws) => match r {
                                Ok(Some(text)) => {
                                    if answer(&mut ws, &text).await.is_err() {
                                        break;
                                    }
                                }
                                _ => break,
                            },
                        }
                    }
                    dropped.fetch_add(1, Ordering::Relaxed);
                });
            }
            IdleTransport::Polling => {
                let mut conn = HttpConn::new(ctx.target.clone());
                let session = connect_polling(&mut conn).await?;
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            r = session.get_answering(&mut conn) => {
                                if r.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    dropped.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
        Ok(())
    }
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &IdleArgs, result: &mut RunResult) {
    if ctx.target.eio() == Eio::V3 && args.transport == IdleTransport::Polling {
        result.fail("idle polling clients speak Engine.IO v4 only");
        return;
    }
    result.param("transport", format!("{:?}", args.transport).to_lowercase());
    result.param("conns", args.conns);
    result.param("warmup", args.warmup);
    let holders = Holders::new();
    let settle_min = Duration::from_millis(args.settle_ms);

    let warm = ctx
        .run_many(args.warmup, ctx.concurrency, None, |_| {
            holders.connect(ctx, args.transport)
        })
        .await;
    for (r, _) in &warm.done {
        if let Err(e) = r {
            result.fail(format!("warm-up connection: {e}"));
        }
    }
    let rss_before = settle(ctx, settle_min / 2).await;

    let before = ctx.probe.sample();
    let many = ctx
        .run_many(args.conns, ctx.concurrency, None, |_| {
            holders.connect(ctx, args.transport)
        })
        .await;
    let (outcomes, skipped) = (many.done, many.late);
    let after = ctx.probe.sample();
    let mut times = Vec::with_capacity(outcomes.len());
    let mut failed = 0usize;
    for (r, us) in outcomes {
        match r {
            Ok(()) => times.push(us),
            Err(e) => {
                failed += 1;
                result.fail(format!("connection: {e}"));
            }
        }
    }
    if skipped > 0 {
        result.fail(format!("{skipped} connections not attempted: time is up"));
    }
    let connected = times.len();
    let window = before.until(&after);
    put_window(result, &window, connected as f64, &ctx.probe);
    Samples::new(times).put(result, "connect");

    let rss_after = settle(ctx, settle_min).await;
    let dropped = holders.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        result.fail(format!("{dropped} idle connections ended on their own"));
    }
    result.metric("connected", connected as f64);
    result.metric("failed", failed as f64);
    result.metric("dropped", dropped as f64);
    if ctx.probe.has_server() {
        result.metric("rss_before_kib", rss_before as f64);
        result.metric("rss_after_kib", rss_after as f64);
        if connected > 0 {
            result.metric(
                "rss_per_conn_kib",
                (rss_after as f64 - rss_before as f64) / connected as f64,
            );
        }
    }
    check_alive(result, &ctx.probe);
    let _ = holders.stop.send(true);
}
