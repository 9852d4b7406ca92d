//! Scenario 5: long-polling request throughput.
//!
//! `clients` Socket.IO clients connect over polling; each then runs `iterations` echo round
//! trips the way a browser does: a GET kept pending on one connection while the event is
//! POSTed on another, until the GET brings the ack back. Figures: HTTP requests per second,
//! server CPU per request, echo round-trip time.

use super::{check_alive, put_window, Ctx};
use crate::client::{connect_polling, PollingSession};
use crate::http::HttpConn;
use crate::proto::{classify, echo_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::time::{Duration, Instant};

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PollingArgs {
    /// Clients.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// Echo round trips per client.
    #[arg(long, default_value_t = 200)]
    pub(crate) iterations: usize,
    /// Length of the echoed string.
    #[arg(long, default_value_t = 32)]
    pub(crate) payload: usize,
}

struct Client {
    session: PollingSession,
    get_conn: HttpConn,
    post_conn: HttpConn,
}

/// One echo round trip; returns the requests it took.
async fn round_trip(c: &mut Client, id: u64, payload: &str) -> Result<usize, BoxError> {
    let Client {
        session,
        get_conn,
        post_conn,
    } = c;
    let session = &*session;
    let body = echo_packet(id, payload);
    let get = async {
        let mut requests = 0;
        loop {
            requests += 1;
            let packets = session.get(get_conn).await?;
            let mut acked = false;
            let mut pinged = false;
            for p in &packets {
                match classify(p) {
                    Incoming::Ack(a) if a == id => acked = true,
                    Incoming::Ping => pinged = true,
                    _ => {}
                }
            }
            if pinged {
                requests += 1;
                session.post(get_conn, "3").await?;
            }
            if acked {
                return Ok::<usize, BoxError>(requests);
            }
        }
    };
    let post = async {
        session.post(post_conn, &body).await?;
        Ok::<usize, BoxError>(1)
    };
    let (g, p) = tokio::join!(get, post);
    Ok(g? + p?)
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &PollingArgs, result: &mut RunResult) {
    result.param("clients", args.clients);
    result.param("iterations", args.iterations);
    result.param("payload", args.payload);
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |_| async {
            let mut get_conn = HttpConn::new(ctx.target.clone());
            let session = connect_polling(&mut get_conn).await?;
            Ok(Client {
                session,
                get_conn,
                post_conn: HttpConn::new(ctx.target.clone()),
            })
        })
        .await;
    let Some(mut clients) = many.all_connected(args.clients, result, &ctx.probe) else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let payload = "x".repeat(args.payload);
    let iterations = args.iterations;
    let until = ctx.budget_end();
    let before = ctx.probe.sample();
    let per_client = futures_util::future::join_all(clients.iter_mut().map(|c| {
        let payload = &payload;
        async move {
            let mut rtts = Vec::with_capacity(iterations);
            let mut requests = 0usize;
            let mut error = None;
            let mut cut = 0usize;
            for id in 0..iterations as u64 {
                if Ctx::spent(until) {
                    cut = iterations - id as usize;
                    break;
                }
                if ctx.late() {
                    error = Some("time is up".to_owned());
                    break;
                }
                let t = Instant::now();
                match ctx.timed(round_trip(c, id, payload)).await {
                    Ok(r) => {
                        requests += r;
                        rtts.push(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            (rtts, requests, error, cut)
        }
    }))
    .await;
    let after = ctx.probe.sample();
    let mut rtts = Vec::new();
    let mut requests = 0usize;
    let mut cut = 0usize;
    for (r, n, e, c) in per_client {
        rtts.extend(r);
        cut += c;
        requests += n;
        if let Some(e) = e {
            result.fail(format!("client: {e}"));
        }
    }
    let expected = clients.len() * iterations - cut;
    result.metric("cut", cut as f64);
    result.metric("echos", rtts.len() as f64);
    result.metric("lost", expected.saturating_sub(rtts.len()) as f64);
    put_window(result, &before.until(&after), requests as f64, &ctx.probe);
    Samples::new(rtts).put(result, "rtt");
    check_alive(result, &ctx.probe);
}
