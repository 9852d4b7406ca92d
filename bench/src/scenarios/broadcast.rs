//! Scenario 4: broadcast fan-out over WebSocket.
//!
//! `clients` sockets connect; the first one sends `broadcast` (with an ack) `rounds` times, one
//! round at a time; the server emits to every socket (the sender included). Figures: server
//! CPU per delivery, and per round the time from the send to the first and to the last
//! delivery, as the generator sees them (median, p99 and max over the rounds; each round's in
//! the result's `samples`).
//!
//! With `--contract binary` it speaks the `socketlet` binary's demo instead: every socket
//! joins the room `bench` (`join`, with an ack), and a round is a `chat` message to that room
//! (no ack) whose text is the round number; the room gets it, the sender included.

use super::{check_alive, put_window, Ctx};
use crate::client::{answer, connect_ws, join_room, recv, send, Ws};
use crate::proto::{broadcast_packet, chat_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::collections::BTreeMap;
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
    /// The events spoken: the benchmark's (`broadcast` with an ack) or the binary's demo
    /// (`join` the room `bench`, then `chat` to it).
    #[arg(long, value_enum, default_value = "bench")]
    pub(crate) contract: Contract,
}

/// Which events make a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Contract {
    /// `broadcast` with an ack, to every socket.
    Bench,
    /// The binary's demo: `join` the room `bench`, `chat` to it.
    Binary,
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

    /// Round `i`'s first and last delivery, in nanoseconds since the epoch.
    pub(crate) fn times(&self, i: usize) -> Option<(u64, u64)> {
        self.rounds.get(i).map(|r| {
            (
                r.first_ns.load(Ordering::Relaxed),
                r.last_ns.load(Ordering::Relaxed),
            )
        })
    }

    /// Deliveries of every round so far.
    pub(crate) fn deliveries(&self) -> usize {
        self.rounds
            .iter()
            .map(|r| r.count.load(Ordering::Relaxed))
            .sum()
    }

    /// Deliveries of unknown rounds so far.
    pub(crate) fn stray(&self) -> usize {
        self.stray.load(Ordering::Relaxed)
    }

    /// Waits until round `i` has all its deliveries (or forever when it is not a round: use it
    /// under a timeout).
    pub(crate) async fn complete(&self, i: usize) {
        while self.round(i).is_none_or(|(n, _)| n < self.clients) {
            self.done.notified().await;
        }
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
pub(crate) async fn receiver(mut ws: Ws, board: Arc<Board>) {
    while let Ok(Some(text)) = recv(&mut ws).await {
        match answer(&mut ws, &text).await {
            Ok(Incoming::Broadcast(r)) => board.record(r),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Sends round `round` from `ws` and waits for its ack (when the contract has one) and its
/// own copy.
async fn send_round(
    ws: &mut Ws,
    board: &Board,
    round: u64,
    contract: Contract,
) -> Result<(), BoxError> {
    let packet = match contract {
        Contract::Bench => broadcast_packet(round, round),
        Contract::Binary => chat_packet(round),
    };
    send(ws, packet).await?;
    let (mut acked, mut delivered) = (contract == Contract::Binary, false);
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
    if args.contract == Contract::Binary {
        result.param("contract", "binary");
    }
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |_| async {
            let mut ws = connect_ws(&ctx.target).await?;
            if args.contract == Contract::Binary {
                join_room(&mut ws, 0).await?;
            }
            Ok(ws)
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
            .timed(send_round(&mut sender, &board, round as u64, args.contract))
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
    // Each round's times too, in the raw result: their order shows what the medians hide (a
    // connection's first 16 deliveries ACKed by TCP's quick-ACK mode, a warm-up, a stall).
    result.samples = first_us
        .iter()
        .zip(&last_us)
        .enumerate()
        .map(|(round, (first, last))| {
            BTreeMap::from([
                ("round".to_owned(), round as f64),
                ("first_ms".to_owned(), *first as f64 / 1000.0),
                ("last_ms".to_owned(), *last as f64 / 1000.0),
            ])
        })
        .collect();
    let first = Samples::new(first_us);
    let last = Samples::new(last_us);
    result.metric("first_ms", first.ms(0.5));
    result.metric("first_p99_ms", first.ms(0.99));
    result.metric("last_ms", last.ms(0.5));
    result.metric("last_p99_ms", last.ms(0.99));
    result.metric("last_max_ms", last.ms(1.0));
    check_alive(result, &ctx.probe);
}
