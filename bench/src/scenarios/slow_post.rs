//! Scenario 8: memory given back after a burst of slow request bodies.
//!
//! Opens `count` polling sessions (handshakes only), lets the RSS settle (the baseline), then
//! sends on a connection of its own for each session a POST that declares `declared` bytes and
//! sends `sent` of them, and no more (slow-loris bodies: the server holds them until its body
//! deadline, `--max-body-time-ms` of the binary, then answers 408, or 503 past its cap on held
//! bodies). Once every POST is answered (or its connection closed) and closed, the server is
//! left idle `idle_secs`. Figures: the RSS peak over the baseline while the bodies hang, and
//! the RSS over the baseline after the idle time: what the allocator gave back.

use super::{check_alive, settle, Ctx};
use crate::client::polling_handshake;
use crate::http::HttpConn;
use crate::net::{find, read_some, write_all};
use crate::stats::RunResult;
use crate::BoxError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SlowPostArgs {
    /// Sessions, and slow POSTs (one per session).
    #[arg(long, default_value_t = 1000)]
    pub(crate) count: usize,
    /// The Content-Length each POST declares.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) declared: usize,
    /// The bytes of body each POST sends.
    #[arg(long, default_value_t = 99_000)]
    pub(crate) sent: usize,
    /// Seconds the server is left idle after the burst.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) idle_secs: f64,
}

/// Sends one slow POST on a connection of its own; returns the answer's status (None: closed
/// without one).
async fn slow_post(ctx: &Ctx, sid: &str, args: &SlowPostArgs) -> Result<Option<u16>, BoxError> {
    let stream = ctx.target.connect().await?;
    let path = format!("{}&transport=polling&sid={sid}", ctx.target.eio().path());
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {}\r\n\r\n4",
        ctx.target.host(),
        args.declared
    )
    .into_bytes();
    req.resize(req.len() + args.sent.saturating_sub(1), b'x');
    write_all(&stream, &req).await?;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = find(&buf, b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok(line.split_whitespace().nth(1).and_then(|s| s.parse().ok()));
        }
        match read_some(&stream, &mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &SlowPostArgs, result: &mut RunResult) {
    result.param("count", args.count);
    result.param("declared", args.declared);
    result.param("sent", args.sent);
    result.param("idle_secs", args.idle_secs);
    let rss_start = settle(ctx, Duration::from_millis(500)).await;
    let many = ctx
        .run_many(args.count, 50, None, |_| async {
            let mut conn = HttpConn::new(ctx.target.clone());
            Ok(polling_handshake(&mut conn).await?.sid)
        })
        .await;
    let Some(sids) = many.all_connected(args.count, result, &ctx.probe) else {
        return;
    };
    let base = settle(ctx, Duration::from_millis(1000)).await;

    // The peak, sampled every 50 ms while the bodies hang.
    let peak = Arc::new(AtomicU64::new(base));
    let sampler = {
        let peak = peak.clone();
        let probe = ctx.probe.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = probe.server_rss_kib() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    // Every POST at once (they hang until the server's deadline), a generous timeout each.
    let timeout = ctx.op_timeout * 3;
    let answers = futures_util::future::join_all(sids.iter().map(|sid| async move {
        tokio::time::timeout(timeout, slow_post(ctx, sid, args))
            .await
            .map_err(|_| BoxError::from("no answer in time"))
            .and_then(|r| r)
    }))
    .await;
    let answered_secs = started.elapsed().as_secs_f64();
    sampler.abort();
    let (mut s408, mut s503, mut other, mut closed) = (0, 0, 0, 0);
    for a in answers {
        match a {
            Ok(Some(408)) => s408 += 1,
            Ok(Some(503)) => s503 += 1,
            Ok(Some(_)) => other += 1,
            Ok(None) => closed += 1,
            Err(e) => {
                closed += 1;
                result.fail(format!("slow POST: {e}"));
            }
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.idle_secs.max(0.0))).await;
    let after = ctx.probe.server_rss_kib().unwrap_or(0);
    result.metric("answered_408", f64::from(s408));
    result.metric("answered_503", f64::from(s503));
    result.metric("answered_other", f64::from(other));
    result.metric("closed", f64::from(closed));
    result.metric("answered_secs", answered_secs);
    result.metric("rss_start_kib", rss_start as f64);
    result.metric("rss_base_kib", base as f64);
    let over = |v: u64| (v as f64 - base as f64) / 1024.0;
    result.metric("rss_peak_over_mib", over(peak.load(Ordering::Relaxed)));
    result.metric("rss_after_over_mib", over(after));
    result.metric(
        "rss_sessions_kib_per_session",
        (base as f64 - rss_start as f64) / args.count.max(1) as f64,
    );
    check_alive(result, &ctx.probe);
}
