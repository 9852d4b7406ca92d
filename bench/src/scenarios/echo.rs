//! Scenario 3: echo with ack, over WebSocket.
//!
//! - `max`: each client sends `messages` echos one after the other (one in flight per client),
//!   as fast as the server answers: server CPU per ack and acks per second;
//! - `rate`: open loop, each client sends `rate` echos per second for `secs` seconds on a fixed
//!   schedule (clients evenly phased), whether or not earlier acks came back; latency is timed
//!   from the scheduled send time, so a slow server cannot hide its queueing (no coordinated
//!   omission).

use super::{check_alive, put_window, Ctx};
use crate::client::{answer, connect_ws, echo_once, send, Ws};
use crate::proto::{echo_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EchoMode {
    /// Closed loop, one echo in flight per client.
    Max,
    /// Open loop at a fixed rate.
    Rate,
}

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EchoArgs {
    /// Closed or open loop.
    #[arg(long, value_enum, default_value = "max")]
    pub(crate) mode: EchoMode,
    /// Clients.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// Echos per client (`max`).
    #[arg(long, default_value_t = 100)]
    pub(crate) messages: usize,
    /// Echos per client per second (`rate`).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rate: f64,
    /// Seconds of sending (`rate`).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) secs: f64,
    /// Length of the echoed string.
    #[arg(long, default_value_t = 32)]
    pub(crate) payload: usize,
    /// Granularity of the open-loop schedule in microseconds: sends due within one quantum
    /// go out together (fewer wake-ups of the generator).
    #[arg(long, default_value_t = 250)]
    pub(crate) quantum_us: u64,
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u64>,
    /// How late each send went out after its scheduled time (open loop).
    send_lag_us: Vec<u64>,
    /// Echos not sent because the phase's budget was spent (closed loop).
    cut: usize,
    error: Option<String>,
}

async fn closed_loop(
    mut ws: Ws,
    start: Instant,
    n: usize,
    payload: String,
    end: Instant,
    until: Option<Instant>,
) -> Outcome {
    let mut out = Outcome {
        latencies_us: Vec::with_capacity(n),
        ..Outcome::default()
    };
    tokio::time::sleep_until(start).await;
    for id in 0..n as u64 {
        if until.is_some_and(|u| Instant::now() >= u) {
            out.cut = n - id as usize;
            break;
        }
        if Instant::now() >= end {
            out.error = Some("time is up".to_owned());
            break;
        }
        let t = Instant::now();
        match tokio::time::timeout_at(end, echo_once(&mut ws, id, &payload)).await {
            Ok(Ok(())) => out.latencies_us.push(t.elapsed().as_micros() as u64),
            Ok(Err(e)) => {
                out.error = Some(e.to_string());
                break;
            }
            Err(_) => {
                out.error = Some("time is up".to_owned());
                break;
            }
        }
    }
    out
}

/// The open-loop schedule, kept by a thread of its own: tokio's timers tick in whole
/// milliseconds, which would add up to a millisecond of the generator's own lateness to every
/// latency. The pacer sleeps (nanosleep) until each send is due and hands the due time to the
/// client's task; send `j` belongs to client `j % n` and is due at `start + j * interval`
/// rounded down to a multiple of `quantum` (the schedule itself is on that grid, so the
/// rounding adds no lateness).
pub(crate) fn spawn_pacer(
    start: std::time::Instant,
    interval: Duration,
    quantum: Duration,
    total: usize,
    clients: Vec<mpsc::UnboundedSender<std::time::Instant>>,
) -> Result<std::thread::JoinHandle<()>, BoxError> {
    let handle = std::thread::Builder::new()
        .name("pacer".to_owned())
        .spawn(move || {
            let n = clients.len().max(1);
            for j in 0..total {
                let offset = interval.mul_f64(j as f64).as_nanos();
                let q = quantum.as_nanos().max(1);
                let due = start + Duration::from_nanos(((offset / q) * q) as u64);
                let now = std::time::Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let _ = clients[j % n].send(due);
            }
        })?;
    Ok(handle)
}

async fn open_loop(
    mut ws: Ws,
    mut schedule: mpsc::UnboundedReceiver<std::time::Instant>,
    n: usize,
    payload: String,
    drain_until: Instant,
) -> Outcome {
    let mut out = Outcome {
        latencies_us: Vec::with_capacity(n),
        send_lag_us: Vec::with_capacity(n),
        ..Outcome::default()
    };
    // (ack id, scheduled send time), in id order.
    let mut pending: VecDeque<(u64, std::time::Instant)> = VecDeque::new();
    let mut next = 0u64;
    let mut scheduled = true;
    let result: Result<(), BoxError> = async {
        loop {
            if !scheduled && pending.is_empty() {
                return Ok(());
            }
            tokio::select! {
                biased;
                msg = crate::client::recv(&mut ws) => {
                    let text = msg?.ok_or("connection closed")?;
                    if let Incoming::Ack(id) = answer(&mut ws, &text).await? {
                        let now = std::time::Instant::now();
                        if let Some(pos) = pending.iter().position(|(i, _)| *i == id) {
                            if let Some((_, due)) = pending.remove(pos) {
                                out.latencies_us.push(now.saturating_duration_since(due).as_micros() as u64);
                            }
                        }
                    }
                }
                due = schedule.recv(), if scheduled => match due {
                    Some(due) => {
                        let lag = std::time::Instant::now().saturating_duration_since(due);
                        out.send_lag_us.push(lag.as_micros() as u64);
                        send(&mut ws, echo_packet(next, &payload)).await?;
                        pending.push_back((next, due));
                        next += 1;
                    }
                    None => scheduled = false,
                },
                _ = tokio::time::sleep_until(drain_until) => {
                    return Err(format!("{} acks still missing at the end", pending.len()).into());
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        out.error = Some(e.to_string());
    }
    out
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &EchoArgs, result: &mut RunResult) {
    result.param("mode", format!("{:?}", args.mode).to_lowercase());
    result.param("clients", args.clients);
    result.param("payload", args.payload);
    match args.mode {
        EchoMode::Max => result.param("messages", args.messages),
        EchoMode::Rate => {
            result.param("rate", args.rate);
            result.param("secs", args.secs);
            result.param("quantum_us", args.quantum_us);
        }
    }
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |_| {
            connect_ws(&ctx.target)
        })
        .await;
    let Some(clients) = many.all_connected(args.clients, result, &ctx.probe) else {
        return;
    };
    let n = clients.len();
    let payload = "x".repeat(args.payload);
    let start = Instant::now() + Duration::from_millis(300);
    let end: Instant = ctx.deadline.into();
    let mut tasks = Vec::with_capacity(n);
    let expected;
    match args.mode {
        EchoMode::Max => {
            expected = n * args.messages;
            let until = ctx.budget.map(|b| start + b);
            for ws in clients {
                tasks.push(tokio::spawn(closed_loop(
                    ws,
                    start,
                    args.messages,
                    payload.clone(),
                    end,
                    until,
                )));
            }
        }
        EchoMode::Rate => {
            let per_client = (args.rate * args.secs).round().max(1.0) as usize;
            expected = n * per_client;
            let drain_until =
                (start + Duration::from_secs_f64(args.secs) + Duration::from_secs(5)).min(end);
            let mut senders = Vec::with_capacity(n);
            for ws in clients {
                let (tx, rx) = mpsc::unbounded_channel();
                senders.push(tx);
                tasks.push(tokio::spawn(open_loop(
                    ws,
                    rx,
                    per_client,
                    payload.clone(),
                    drain_until,
                )));
            }
            // Every client sends `rate` times a second, the clients evenly phased.
            let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001) / n as f64);
            if let Err(e) = spawn_pacer(
                start.into_std(),
                interval,
                Duration::from_micros(args.quantum_us),
                expected,
                senders,
            ) {
                result.fail(format!("pacer thread: {e}"));
                return;
            }
        }
    }
    tokio::time::sleep_until(start).await;
    let before = ctx.probe.sample();
    let mut latencies = Vec::with_capacity(expected);
    let mut lags = Vec::new();
    let mut cut = 0usize;
    for t in tasks {
        match t.await {
            Ok(o) => {
                latencies.extend(o.latencies_us);
                lags.extend(o.send_lag_us);
                cut += o.cut;
                if let Some(e) = o.error {
                    result.fail(format!("client: {e}"));
                }
            }
            Err(e) => result.fail(format!("client task: {e}")),
        }
    }
    let after = ctx.probe.sample();
    let acks = latencies.len();
    put_window(result, &before.until(&after), acks as f64, &ctx.probe);
    let expected = expected - cut;
    result.metric("cut", cut as f64);
    result.metric("expected", expected as f64);
    result.metric("lost", expected.saturating_sub(acks) as f64);
    if acks < expected {
        result.fail(format!("{} of {expected} acks missing", expected - acks));
    }
    let samples = Samples::new(latencies);
    let prefix = match args.mode {
        EchoMode::Max => "rtt",
        EchoMode::Rate => "latency",
    };
    samples.put(result, prefix);
    if args.mode == EchoMode::Rate {
        // The generator's own lateness, included in the latency above.
        Samples::new(lags).put(result, "send_lag");
    }
    result.latency_curve = samples.curve();
    check_alive(result, &ctx.probe);
}
