//! Scenario 6: a soak over WebSocket.
//!
//! `clients` clients stay connected for `secs` seconds. Each sends `echo_rate` echos a second on
//! a fixed, evenly phased schedule (open loop, as `echo --mode rate`: latency is timed from the
//! scheduled send time), and one more client sends a `broadcast` (with an ack) every
//! `broadcast_ms`, which the server emits to every socket. Every `sample_secs` the run records a
//! window: the server's RSS and CPU, the p50/p99/max of the window's echo latency, the echos,
//! broadcasts and deliveries counted, and the errors (connections lost, acks missing after
//! `ack_timeout` seconds). Each broadcast's time to its last delivery is added to the window it
//! was sent in once the run is over.
//!
//! Figures: the errors, the server's RSS at the end of the warm-up and at the end of the run and
//! the drift between them (the run fails past `max_drift_pct`), the RSS's highest point, p99 over
//! time, broadcast deliveries missing. The windows are the result's `samples`; `socketlet-bench
//! soak-report` turns them into a report and plots.

use super::broadcast::Board;
use super::echo::spawn_pacer;
use super::{check_alive, Ctx};
use crate::client::{answer, connect_ws, recv, send, Ws};
use crate::procfs::Window;
use crate::proto::{broadcast_packet, echo_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SoakArgs {
    /// Clients (each echoes; all get the broadcasts).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) clients: usize,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) secs: f64,
    /// Echos per client per second.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) echo_rate: f64,
    /// Milliseconds between broadcasts to every client (0: none).
    #[arg(long, default_value_t = 1000)]
    pub(crate) broadcast_ms: u64,
    /// Seconds per sample window.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) sample_secs: f64,
    /// Seconds of traffic before the RSS the drift is measured from (the server's buffers and
    /// tables reach their working size meanwhile).
    #[arg(long, default_value_t = 60.0)]
    pub(crate) warmup_secs: f64,
    /// The run fails if the RSS drifts by more than this, in percent, from the end of the
    /// warm-up to the end.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) max_drift_pct: f64,
    /// Seconds an echo may wait for its ack before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) ack_timeout: f64,
    /// Length of the echoed string.
    #[arg(long, default_value_t = 32)]
    pub(crate) payload: usize,
    /// Granularity of the echo schedule in microseconds (see `echo`).
    #[arg(long, default_value_t = 250)]
    pub(crate) quantum_us: u64,
}

/// What every client task reports into, read and reset by the sampler at each window.
struct Shared {
    /// Echo latencies of the current window, in microseconds.
    latencies: Mutex<Vec<u64>>,
    /// Errors of the current window, and of the whole run.
    errors: AtomicU64,
    errors_total: AtomicU64,
    /// The first few error messages.
    messages: Mutex<Vec<String>>,
    /// Broadcast deliveries of the current window.
    deliveries: AtomicU64,
    /// Broadcasts acked in the current window.
    broadcasts: AtomicU64,
    /// Clients whose connection ended before the run did.
    lost: AtomicUsize,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.messages.lock() {
            if m.len() < 8 {
                m.push(what);
            }
        }
    }
}

/// Runs one client: sends its echos when the pacer says, answers heartbeats, times acks, counts
/// broadcasts, until its schedule ends and its acks are in (or `drain_until`).
async fn client(
    mut ws: Ws,
    mut schedule: mpsc::UnboundedReceiver<std::time::Instant>,
    payload: String,
    shared: Arc<Shared>,
    board: Arc<Board>,
    (ack_timeout, drain_until): (Duration, Instant),
    mut stop: watch::Receiver<bool>,
) {
    // (ack id, scheduled send time), in id order.
    let mut pending: VecDeque<(u64, std::time::Instant)> = VecDeque::new();
    let mut next = 0u64;
    let mut scheduled = true;
    let mut stopped = false;
    let outcome: Result<(), BoxError> = async {
        loop {
            // Done when its echos are all answered and the last broadcast has come.
            if !scheduled && pending.is_empty() && stopped {
                return Ok(());
            }
            tokio::select! {
                biased;
                changed = stop.changed(), if !stopped => {
                    stopped = changed.is_err() || *stop.borrow();
                }
                msg = recv(&mut ws) => {
                    let text = msg?.ok_or("connection closed by the server")?;
                    match answer(&mut ws, &text).await? {
                        Incoming::Ack(id) => {
                            let now = std::time::Instant::now();
                            if let Some(pos) = pending.iter().position(|(i, _)| *i == id) {
                                if let Some((_, due)) = pending.remove(pos) {
                                    let us = now.saturating_duration_since(due).as_micros() as u64;
                                    if let Ok(mut l) = shared.latencies.lock() {
                                        l.push(us);
                                    }
                                }
                            }
                        }
                        Incoming::Broadcast(round) => {
                            board.record(round);
                            shared.deliveries.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                due = schedule.recv(), if scheduled => match due {
                    Some(due) => {
                        // Acks that never came: errors, and forgotten.
                        while pending.front().is_some_and(|(_, at)| due.saturating_duration_since(*at) > ack_timeout) {
                            if let Some((id, _)) = pending.pop_front() {
                                shared.error(format!("echo {id}: no ack within {ack_timeout:?}"));
                            }
                        }
                        send(&mut ws, echo_packet(next, &payload)).await?;
                        pending.push_back((next, due));
                        next += 1;
                    }
                    None => scheduled = false,
                },
                _ = tokio::time::sleep_until(drain_until), if !pending.is_empty() => {
                    return Err(format!("{} acks still missing at the end", pending.len()).into());
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        shared.lost.fetch_add(1, Ordering::Relaxed);
        shared.error(format!("client: {e}"));
    }
}

/// Sends a broadcast every `every` from `start` until `end` (each waits for its ack and its own
/// copy, answering heartbeats); returns each round's send time in ns since `board.epoch`.
async fn broadcaster(
    mut ws: Ws,
    shared: Arc<Shared>,
    board: Arc<Board>,
    every: Duration,
    (start, end): (Instant, Instant),
    op_timeout: Duration,
) -> Vec<u64> {
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval_at(start, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let rounds = board.rounds();
    for round in 0..rounds as u64 {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        sent.push(board.epoch.elapsed().as_nanos() as u64);
        let exchange = async {
            send(&mut ws, broadcast_packet(round, round)).await?;
            let (mut acked, mut delivered) = (false, false);
            while !(acked && delivered) {
                let text = recv(&mut ws)
                    .await?
                    .ok_or("the broadcaster's connection closed")?;
                match answer(&mut ws, &text).await? {
                    Incoming::Ack(id) if id == round => acked = true,
                    Incoming::Broadcast(r) => {
                        board.record(r);
                        delivered |= r == round;
                    }
                    _ => {}
                }
            }
            Ok::<(), BoxError>(())
        };
        match tokio::time::timeout(op_timeout, exchange).await {
            Ok(Ok(())) => {
                shared.broadcasts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                shared.error(format!("broadcast {round}: {e}"));
                shared.lost.fetch_add(1, Ordering::Relaxed);
                return sent;
            }
            Err(_) => shared.error(format!("broadcast {round}: no ack within {op_timeout:?}")),
        }
    }
    sent
}

/// One window of the run, as written in the result's `samples`.
fn window(
    t: f64,
    w: &Window,
    rss_kib: Option<u64>,
    latencies: Vec<u64>,
    shared: &Shared,
) -> BTreeMap<String, f64> {
    let secs = w.secs.max(1e-9);
    let s = Samples::new(latencies);
    let mut m = BTreeMap::new();
    m.insert("t_secs".to_owned(), t);
    if let Some(kib) = rss_kib {
        m.insert("rss_mib".to_owned(), kib as f64 / 1024.0);
    }
    m.insert("server_cpu_pct".to_owned(), 100.0 * w.server_cpu / secs);
    m.insert("gen_cpu_pct".to_owned(), 100.0 * w.self_cpu / secs);
    m.insert("other_cpu_pct".to_owned(), w.other_cpu_pct);
    m.insert("echos".to_owned(), s.len() as f64);
    m.insert("echo_p50_ms".to_owned(), s.ms(0.5));
    m.insert("echo_p99_ms".to_owned(), s.ms(0.99));
    m.insert("echo_max_ms".to_owned(), s.ms(1.0));
    m.insert(
        "deliveries".to_owned(),
        shared.deliveries.swap(0, Ordering::Relaxed) as f64,
    );
    m.insert(
        "broadcasts".to_owned(),
        shared.broadcasts.swap(0, Ordering::Relaxed) as f64,
    );
    m.insert(
        "errors".to_owned(),
        shared.errors.swap(0, Ordering::Relaxed) as f64,
    );
    m
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &SoakArgs, result: &mut RunResult) {
    result.param("clients", args.clients);
    result.param("secs", args.secs);
    result.param("echo_rate", args.echo_rate);
    result.param("broadcast_ms", args.broadcast_ms);
    result.param("sample_secs", args.sample_secs);
    result.param("warmup_secs", args.warmup_secs);
    result.param("payload", args.payload);
    result.param("ack_timeout", args.ack_timeout);
    let connecting = Instant::now();
    let many = ctx
        .run_many(args.clients + 1, ctx.concurrency, None, |_| {
            connect_ws(&ctx.target)
        })
        .await;
    let Some(mut clients) = many.all_connected(args.clients + 1, result, &ctx.probe) else {
        return;
    };
    result.metric("connect_secs", connecting.elapsed().as_secs_f64());
    let sender = clients.swap_remove(0);
    let n = clients.len();
    let rounds = if args.broadcast_ms == 0 {
        0
    } else {
        (args.secs * 1000.0 / args.broadcast_ms as f64).ceil() as usize + 1
    };
    let board = Arc::new(Board::new(n + 1, rounds));
    let shared = Arc::new(Shared {
        latencies: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        errors_total: AtomicU64::new(0),
        messages: Mutex::new(Vec::new()),
        deliveries: AtomicU64::new(0),
        broadcasts: AtomicU64::new(0),
        lost: AtomicUsize::new(0),
    });
    let payload = "x".repeat(args.payload);
    let ack_timeout = Duration::from_secs_f64(args.ack_timeout);
    let start = Instant::now() + Duration::from_millis(500);
    // Broadcast send times are counted from the board's epoch, windows from `start`.
    let epoch_to_start = start
        .into_std()
        .saturating_duration_since(board.epoch)
        .as_secs_f64();
    let end = start + Duration::from_secs_f64(args.secs);
    let drain_until = end + ack_timeout;

    // The echo schedule: the pacer thread hands each client its due times.
    let per_client = (args.echo_rate * args.secs).floor().max(0.0) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut senders = Vec::with_capacity(n);
    let (stop, stop_rx) = watch::channel(false);
    for ws in clients {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.spawn(client(
            ws,
            rx,
            payload.clone(),
            shared.clone(),
            board.clone(),
            (ack_timeout, drain_until),
            stop_rx.clone(),
        ));
    }
    if per_client > 0 {
        let interval = Duration::from_secs_f64(1.0 / args.echo_rate.max(1e-6) / n as f64);
        if let Err(e) = spawn_pacer(
            start.into_std(),
            interval,
            Duration::from_micros(args.quantum_us),
            per_client * n,
            senders,
        ) {
            result.fail(format!("pacer thread: {e}"));
            return;
        }
    } else {
        drop(senders);
    }
    let bcast = (rounds > 0).then(|| {
        tokio::spawn(broadcaster(
            sender,
            shared.clone(),
            board.clone(),
            Duration::from_millis(args.broadcast_ms),
            (start, end),
            ctx.op_timeout,
        ))
    });

    // The sampler.
    tokio::time::sleep_until(start).await;
    let every = Duration::from_secs_f64(args.sample_secs.max(0.5));
    let mut samples = Vec::new();
    let mut last = ctx.probe.sample();
    let mut tick = tokio::time::interval_at(start + every, every);
    loop {
        tick.tick().await;
        let now = ctx.probe.sample();
        let w = last.until(&now);
        let latencies = shared
            .latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let t = Instant::now().duration_since(start).as_secs_f64();
        samples.push(window(
            t,
            &w,
            ctx.probe.server_rss_kib(),
            latencies,
            &shared,
        ));
        last = now;
        if !ctx.probe.server_alive() || Instant::now() + every / 2 >= end {
            break;
        }
    }
    // The last broadcast is sent: once every client has it (or after the operation timeout), the
    // clients end, as soon as their last echos are answered.
    let sent = match bcast {
        Some(handle) => handle.await.unwrap_or_default(),
        None => Vec::new(),
    };
    if let Some(last) = sent.len().checked_sub(1) {
        let complete = async {
            while board
                .round(last)
                .is_some_and(|(count, _)| count < board.clients)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(ctx.op_timeout, complete).await;
    }
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            shared.error(format!("client task: {e}"));
        }
    }
    // What came after the last window (the last acks): counted, not a window of its own.
    let late = shared.latencies.lock().map(|l| l.len()).unwrap_or(0);
    result.metric("echos_after_last_window", late as f64);
    if let Some(kib) = ctx.probe.server_rss_kib() {
        result.metric("rss_after_mib", kib as f64 / 1024.0);
    }
    let rounds = Rounds {
        board: &board,
        sent: &sent,
        epoch_to_start,
    };
    finish(ctx, args, result, samples, &shared, &rounds);
}

/// The broadcasts of a run.
struct Rounds<'a> {
    /// Their deliveries.
    board: &'a Board,
    /// When each was sent, in ns since the board's epoch.
    sent: &'a [u64],
    /// Seconds from the board's epoch to the start of the windows.
    epoch_to_start: f64,
}

/// The broadcasts' times to their last delivery, per window; the run's figures; the checks.
fn finish(
    ctx: &Ctx,
    args: &SoakArgs,
    result: &mut RunResult,
    mut samples: Vec<BTreeMap<String, f64>>,
    shared: &Shared,
    rounds: &Rounds<'_>,
) {
    let Rounds {
        board,
        sent,
        epoch_to_start,
    } = *rounds;
    let receivers = board.clients;
    let mut missing = 0usize;
    let mut last_us_all = Vec::new();
    // Rounds by the window they were sent in.
    let mut per_window: Vec<Vec<u64>> = vec![Vec::new(); samples.len()];
    for (round, sent_ns) in sent.iter().enumerate() {
        let Some(r) = board.round(round) else {
            continue;
        };
        let (count, last_ns) = r;
        missing += receivers.saturating_sub(count);
        if count > 0 {
            let us = last_ns.saturating_sub(*sent_ns) / 1000;
            last_us_all.push(us);
            let t = *sent_ns as f64 / 1e9 - epoch_to_start;
            let i = samples
                .iter()
                .position(|s| s.get("t_secs").copied().unwrap_or(0.0) >= t)
                .unwrap_or(samples.len().saturating_sub(1));
            if let Some(v) = per_window.get_mut(i) {
                v.push(us);
            }
        }
    }
    for (s, v) in samples.iter_mut().zip(per_window) {
        let v = Samples::new(v);
        s.insert("broadcast_last_p50_ms".to_owned(), v.ms(0.5));
        s.insert("broadcast_last_max_ms".to_owned(), v.ms(1.0));
    }

    let errors = shared.errors_total.load(Ordering::Relaxed);
    result.metric("errors", errors as f64);
    result.metric("clients_lost", shared.lost.load(Ordering::Relaxed) as f64);
    result.metric("broadcasts", sent.len() as f64);
    result.metric("deliveries_missing", missing as f64);
    let echos: f64 = samples.iter().filter_map(|s| s.get("echos")).sum();
    let late = result
        .metrics
        .get("echos_after_last_window")
        .copied()
        .unwrap_or(0.0);
    result.metric("echos", echos + late);
    let last = Samples::new(last_us_all);
    result.metric("broadcast_last_p50_ms", last.ms(0.5));
    result.metric("broadcast_last_p99_ms", last.ms(0.99));
    let p99s: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.get("echo_p99_ms").copied())
        .collect();
    let p99_us = Samples::new(p99s.iter().map(|v| (v * 1000.0) as u64).collect());
    result.metric("echo_p99_min_ms", p99_us.ms(0.0));
    result.metric("echo_p99_median_ms", p99_us.ms(0.5));
    result.metric("echo_p99_max_ms", p99_us.ms(1.0));
    for key in ["server_cpu_pct", "gen_cpu_pct", "other_cpu_pct"] {
        let v: Vec<f64> = samples.iter().filter_map(|s| s.get(key).copied()).collect();
        if !v.is_empty() {
            result.metric(
                &format!("{key}_mean"),
                v.iter().sum::<f64>() / v.len() as f64,
            );
        }
    }
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.get("t_secs").copied()?, s.get("rss_mib").copied()?)))
        .collect();
    let start = rss
        .iter()
        .find(|(t, _)| *t >= args.warmup_secs - 1e-6)
        .or(rss.first());
    if let (Some(&(t0, r0)), Some(&(t1, r1))) = (start, rss.last()) {
        let drift = 100.0 * (r1 - r0) / r0.max(1e-9);
        result.metric("rss_start_secs", t0);
        result.metric("rss_start_mib", r0);
        result.metric("rss_end_mib", r1);
        result.metric("rss_end_secs", t1);
        result.metric("rss_drift_pct", drift);
        result.metric("rss_first_mib", rss[0].1);
        result.metric(
            "rss_max_mib",
            rss.iter().map(|r| r.1).fold(f64::MIN, f64::max),
        );
        if drift > args.max_drift_pct {
            result.fail(format!(
                "the RSS drifted by {drift:.2} % from {r0:.1} MiB at {t0:.0} s to {r1:.1} MiB at {t1:.0} s (limit {} %)",
                args.max_drift_pct
            ));
        }
    }
    if errors > 0 {
        let messages = shared
            .messages
            .lock()
            .map(|m| m.join("; "))
            .unwrap_or_default();
        result.fail(format!("{errors} errors: {messages}"));
    }
    if missing > 0 {
        result.fail(format!("{missing} broadcast deliveries missing"));
    }
    result.samples = samples;
    check_alive(result, &ctx.probe);
}
