//! Scenario 4: broadcast fan-out over WebSocket.
//!
//! `clients` sockets connect; the first one sends `broadcast` (with an ack) `rounds` times, one
//! round at a time; the server emits to every socket (the sender included). Figures: server
//! CPU per delivery, and per round the time from the send to the first and to the last
//! delivery, as the generator sees them.

use super::{check_alive, put_window, Ctx};
use crate::client::{answer, connect_ws, recv, send, Ws};
use crate::proto::{broadcast_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BroadcastArgs {
    /// Sockets receiving each broadcast.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// Broadcasts.
    #[arg(long, default_value_t = 20)]
    pub(crate) rounds: usize,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) pause_ms: u64,
}

struct Round {
    count: AtomicUsize,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

/// The deliveries of each round of broadcasts, as the receivers count them.
pub(crate) struct Board {
    /// Times are in nanoseconds since this.
    pub(crate) epoch: Instant,
    /// Receivers of each round.
    pub(crate) clients: usize,
    rounds: Vec<Round>,
    done: Notify,
    stray: AtomicUsize,
}

impl Board {
    /// A board for `rounds` rounds of `clients` receivers each, its epoch now.
    pub(crate) fn new(clients: usize, rounds: usize) -> Board {
        Board {
            epoch: Instant::now(),
            clients,
            rounds: (0..rounds)
                .map(|_| Round {
                    count: AtomicUsize::new(0),
                    first_ns: AtomicU64::new(u64::MAX),
                    last_ns: AtomicU64::new(0),
                })
                .collect(),
            done: Notify::new(),
            stray: AtomicUsize::new(0),
        }
    }

    /// The number of rounds.
    pub(crate) fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// Round `i`'s deliveries so far and the time of its last one.
    pub(crate) fn round(&self, i: usize) -> Option<(usize, u64)> {
        self.rounds.get(i).map(|r| {
            (
                r.count.load(Ordering::Acquire),
                r.last_ns.load(Ordering::Relaxed),
            )
        })
    }

    /// Counts one delivery of `round`.
    pub(crate) fn record(&self, round: u64) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        match self.rounds.get(round as usize) {
            Some(r) => {
                r.first_ns.fetch_min(now, Ordering::Relaxed);
                r.last_ns.fetch_max(now, Ordering::Relaxed);
                if r.count.fetch_add(1, Ordering::AcqRel) + 1 == self.clients {
                    self.done.notify_one();
                }
            }
            None => {
                self.stray.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Counts the deliveries to one socket until the connection ends or its task is aborted (no
/// stop signal to wait on beside the socket: a future of it, made and dropped at every
/// message, would cost about as much as the message).
async fn receiver(mut ws: Ws, board: Arc<Board>) {
    while let Ok(Some(text)) = recv(&mut ws).await {
        match answer(&mut ws, &text).await {
            Ok(Incoming::Broadcast(r)) => board.record(r),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Sends round `round` from `ws` and waits for its ack and its own copy.
async fn send_round(ws: &mut Ws, board: &Board, round: u64) -> Result<(), BoxError> {
    send(ws, broadcast_packet(round, round)).await?;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        let text = recv(ws).await?.ok_or("sender closed")?;
        match answer(ws, &text).await? {
            Incoming::Ack(id) if id == round => acked = true,
            Incoming::Broadcast(r) => {
                board.record(r);
                if r == round {
                    delivered = true;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &BroadcastArgs, result: &mut RunResult) {
    result.param("clients", args.clients);
    result.param("rounds", args.rounds);
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |_| {
            connect_ws(&ctx.target)
        })
        .await;
    let Some(mut clients) = many.all_connected(args.clients, result, &ctx.probe) else {
        return;
    };
    let n = clients.len();
    let board = Arc::new(Board::new(n, args.rounds));
    let mut sender = clients.swap_remove(0);
    let mut receivers = tokio::task::JoinSet::new();
    for ws in clients {
        receivers.spawn(receiver(ws, board.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut first_us = Vec::with_capacity(args.rounds);
    let mut last_us = Vec::with_capacity(args.rounds);
    let until = ctx.budget_end();
    let before = ctx.probe.sample();
    let mut rounds_done = 0usize;
    for round in 0..args.rounds {
        // At least 3 rounds, then no new one once the budget is spent.
        if round >= 3 && Ctx::spent(until) {
            break;
        }
        if ctx.late() {
            result.fail(format!("time is up after {round} rounds"));
            break;
        }
        let sent_ns = board.epoch.elapsed().as_nanos() as u64;
        if let Err(e) = ctx
            .timed(send_round(&mut sender, &board, round as u64))
            .await
        {
            result.fail(format!("round {round}: {e}"));
            break;
        }
        let r = &board.rounds[round];
        let wait = async {
            while r.count.load(Ordering::Acquire) < n {
                board.done.notified().await;
            }
        };
        if tokio::time::timeout(ctx.op_timeout, wait).await.is_err() {
            result.fail(format!(
                "round {round}: {} of {n} deliveries after {:?}",
                r.count.load(Ordering::Acquire),
                ctx.op_timeout
            ));
            break;
        }
        first_us.push(r.first_ns.load(Ordering::Relaxed).saturating_sub(sent_ns) / 1000);
        last_us.push(r.last_ns.load(Ordering::Relaxed).saturating_sub(sent_ns) / 1000);
        rounds_done += 1;
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let after = ctx.probe.sample();
    // Give stragglers a moment, then count every delivery.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deliveries: usize = board
        .rounds
        .iter()
        .map(|r| r.count.load(Ordering::Relaxed))
        .sum();
    receivers.abort_all();
    put_window(result, &before.until(&after), deliveries as f64, &ctx.probe);
    result.metric("rounds_done", rounds_done as f64);
    result.metric(
        "missing",
        (rounds_done * n).saturating_sub(deliveries) as f64,
    );
    let stray = board.stray.load(Ordering::Relaxed);
    if stray > 0 {
        result.fail(format!("{stray} deliveries of unknown rounds"));
    }
    let first = Samples::new(first_us);
    let last = Samples::new(last_us);
    result.metric("first_ms", first.ms(0.5));
    result.metric("last_ms", last.ms(0.5));
    result.metric("last_max_ms", last.ms(1.0));
    check_alive(result, &ctx.probe);
}
