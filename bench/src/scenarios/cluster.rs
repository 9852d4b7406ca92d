//! Scenario 6: broadcasts across a cluster of nodes (one Redis between them).
//!
//! `clients` sockets connect, spread over the nodes in turn (`--nodes`); with `--to room` the
//! first `room_clients` of them join the room `bench` (`join`, with an ack). Then `rounds`
//! broadcasts go out, at most `in_flight` of them not yet delivered everywhere at once, each
//! made either by one more client on the first node (`broadcast` to everyone, the sender
//! included, or `broadcast_room` to the room; the ack is counted) or, with `--emitter CMD`, by
//! an emitter process that publishes to Redis without being a node (Node's
//! `@socket.io/redis-emitter`, python-socketio's `RedisManager(write_only=True)`): the command
//! runs under `sh -c`, prints `READY` once it can publish, and emits `broadcast` with each
//! round number it reads on its standard input (one a line) to the room `bench` (or to
//! everyone with `--to all`).
//!
//! Figures: deliveries per second end to end, server CPU per delivery summed over the nodes
//! (every `--pid`), the broker's (`--aux-pid`, `aux_cpu_us_per_op`) and the emitter's
//! (`emitter_cpu_us_per_op`) CPU per delivery, and per round the time from its send to its
//! last delivery (p50, p99).

use super::broadcast::{receiver, Board};
use super::{check_alive, put_window, Ctx};
use crate::client::{answer, connect_ws, join_room, recv, send, Ws};
use crate::net::Target;
use crate::proto::{event_packet, Incoming};
use crate::stats::{RunResult, Samples};
use crate::BoxError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Who gets each broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum To {
    /// Every socket of `/`.
    All,
    /// The room `bench`.
    Room,
}

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClusterArgs {
    /// The nodes' addresses (comma-separated); default: `--addr` alone.
    #[arg(long, value_delimiter = ',')]
    pub(crate) nodes: Vec<SocketAddr>,
    /// Receiving sockets, spread over the nodes.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// Everyone or the room `bench`.
    #[arg(long, value_enum, default_value = "all")]
    pub(crate) to: To,
    /// With `--to room`: how many of the clients join the room (default: all of them).
    #[arg(long)]
    pub(crate) room_clients: Option<usize>,
    /// Broadcasts.
    #[arg(long, default_value_t = 50)]
    pub(crate) rounds: usize,
    /// Broadcasts sent and not yet delivered to every receiver, at most.
    #[arg(long, default_value_t = 4)]
    pub(crate) in_flight: usize,
    /// An emitter command (run by `sh -c`) that makes the broadcasts instead of a client.
    #[arg(long)]
    pub(crate) emitter: Option<String>,
}

/// What makes the broadcasts.
enum Trigger {
    /// A client: the packets to send go to its task.
    Client(mpsc::UnboundedSender<String>),
    /// An emitter process: round numbers on its standard input.
    Emitter {
        child: Box<tokio::process::Child>,
        stdin: tokio::process::ChildStdin,
    },
}

/// The sender client: sends what it is given, counts its acks and its own deliveries.
async fn sender_task(
    mut ws: Ws,
    mut packets: mpsc::UnboundedReceiver<String>,
    board: Arc<Board>,
    acks: Arc<AtomicUsize>,
) -> Result<(), BoxError> {
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            p = packets.recv(), if open => match p {
                Some(p) => send(&mut ws, p).await?,
                None => open = false,
            },
            msg = recv(&mut ws) => {
                let Some(text) = msg? else { return Ok(()) };
                match answer(&mut ws, &text).await? {
                    Incoming::Broadcast(r) => board.record(r),
                    Incoming::Ack(_) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Starts the emitter and waits for its `READY`.
async fn start_emitter(cmd: &str, ctx: &Ctx) -> Result<Trigger, BoxError> {
    // `exec`: the emitter is the child itself, so that its CPU time is read from its pid.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await? {
            if line.trim() == "READY" {
                return Ok::<(), BoxError>(());
            }
        }
        Err("the emitter ended before READY".into())
    };
    tokio::time::timeout(ctx.op_timeout * 3, ready)
        .await
        .map_err(|_| "the emitter did not print READY in time")??;
    // Whatever it prints later is read and dropped, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Trigger::Emitter {
        child: Box::new(child),
        stdin,
    })
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &ClusterArgs, result: &mut RunResult) {
    let nodes: Vec<Target> = if args.nodes.is_empty() {
        vec![ctx.target.clone()]
    } else {
        let mut targets = Vec::new();
        for addr in &args.nodes {
            match Target::new(*addr, 4) {
                Ok(t) => targets.push(t.with_eio(ctx.target.eio())),
                Err(e) => {
                    result.fail(format!("node {addr}: {e}"));
                    return;
                }
            }
        }
        targets
    };
    let room_clients = match args.to {
        To::All => 0,
        To::Room => args.room_clients.unwrap_or(args.clients).min(args.clients),
    };
    result.param("nodes", nodes.len());
    result.param("clients", args.clients);
    result.param("to", format!("{:?}", args.to).to_lowercase());
    result.param("room_clients", room_clients);
    result.param("rounds", args.rounds);
    result.param("in_flight", args.in_flight);
    result.param("emitter", args.emitter.is_some());

    // The receivers, spread over the nodes; the room's join it.
    let many = ctx
        .run_many(args.clients, ctx.concurrency, None, |i| {
            let node = nodes[i % nodes.len()].clone();
            async move {
                let mut ws = connect_ws(&node).await?;
                if i < room_clients {
                    join_room(&mut ws, 0).await?;
                }
                Ok(ws)
            }
        })
        .await;
    let Some(clients) = many.all_connected(args.clients, result, &ctx.probe) else {
        return;
    };
    // Deliveries per round: the room's, or everyone's (and the sender's own with a client).
    let per_round = match (args.to, args.emitter.is_some()) {
        (To::Room, _) => room_clients,
        (To::All, true) => clients.len(),
        (To::All, false) => clients.len() + 1,
    };
    let board = Arc::new(Board::new(per_round, args.rounds));
    let mut receivers = tokio::task::JoinSet::new();
    for ws in clients {
        receivers.spawn(receiver(ws, board.clone()));
    }
    let acks = Arc::new(AtomicUsize::new(0));
    let mut sender_handle = None;
    let mut trigger = match &args.emitter {
        Some(cmd) => match start_emitter(cmd, ctx).await {
            Ok(t) => t,
            Err(e) => {
                result.fail(format!("emitter: {e}"));
                return;
            }
        },
        None => match connect_ws(&nodes[0]).await {
            Ok(ws) => {
                let (tx, rx) = mpsc::unbounded_channel();
                sender_handle = Some(tokio::spawn(sender_task(
                    ws,
                    rx,
                    board.clone(),
                    acks.clone(),
                )));
                Trigger::Client(tx)
            }
            Err(e) => {
                result.fail(format!("the sender's connect: {e}"));
                return;
            }
        },
    };
    let emitter_pid = match &trigger {
        Trigger::Emitter { child, .. } => child.id(),
        Trigger::Client(_) => None,
    };
    // Room subscriptions (sharded adapters subscribe per room) take a moment to settle.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let event = match args.to {
        To::All => "broadcast",
        To::Room => "broadcast_room",
    };
    let until = ctx.budget_end();
    let emitter_cpu = || {
        emitter_pid
            .and_then(|p| crate::procfs::cpu_secs(&p.to_string()).ok())
            .unwrap_or(0.0)
    };
    let emitter_before = emitter_cpu();
    let before = ctx.probe.sample();
    let mut sent_ns = Vec::with_capacity(args.rounds);
    let mut failed = None;
    for round in 0..args.rounds {
        if round >= 3 && Ctx::spent(until) {
            break;
        }
        if ctx.late() {
            failed = Some(format!("time is up after {round} rounds"));
            break;
        }
        if round >= args.in_flight.max(1) {
            let oldest = round - args.in_flight.max(1);
            if tokio::time::timeout(ctx.op_timeout, board.complete(oldest))
                .await
                .is_err()
            {
                failed = Some(format!(
                    "round {oldest}: {} of {per_round} deliveries after {:?}",
                    board.round(oldest).map_or(0, |r| r.0),
                    ctx.op_timeout
                ));
                break;
            }
        }
        sent_ns.push(board.epoch.elapsed().as_nanos() as u64);
        let sent = match &mut trigger {
            Trigger::Client(tx) => tx
                .send(event_packet(event, round as u64, round as u64))
                .map_err(|_| BoxError::from("the sender is gone")),
            Trigger::Emitter { stdin, .. } => stdin
                .write_all(format!("{round}\n").as_bytes())
                .await
                .map_err(BoxError::from),
        };
        if let Err(e) = sent {
            failed = Some(format!("round {round}: {e}"));
            break;
        }
    }
    let rounds_sent = sent_ns.len();
    // The last rounds' deliveries.
    for round in rounds_sent.saturating_sub(args.in_flight.max(1))..rounds_sent {
        if failed.is_some() {
            break;
        }
        if tokio::time::timeout(ctx.op_timeout, board.complete(round))
            .await
            .is_err()
        {
            failed = Some(format!(
                "round {round}: {} of {per_round} deliveries after {:?}",
                board.round(round).map_or(0, |r| r.0),
                ctx.op_timeout
            ));
        }
    }
    let after = ctx.probe.sample();
    let emitter_after = emitter_cpu();
    if let Some(e) = failed {
        result.fail(e);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deliveries = board.deliveries();
    match trigger {
        Trigger::Client(tx) => drop(tx),
        Trigger::Emitter { mut child, stdin } => {
            drop(stdin);
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
    if let Some(h) = sender_handle {
        h.abort();
        if emitter_pid.is_none() {
            let acked = acks.load(Ordering::Relaxed);
            result.metric("acks", acked as f64);
            if acked < rounds_sent {
                result.fail(format!(
                    "{} of {rounds_sent} acks missing",
                    rounds_sent - acked
                ));
            }
        }
    }
    receivers.abort_all();

    let window = before.until(&after);
    put_window(result, &window, deliveries as f64, &ctx.probe);
    if let Some(secs) = (window.secs > 0.0).then_some(window.secs) {
        result.metric("broadcasts_per_sec", rounds_sent as f64 / secs);
    }
    if emitter_pid.is_some() && deliveries > 0 {
        result.metric(
            "emitter_cpu_us_per_op",
            (emitter_after - emitter_before).max(0.0) * 1e6 / deliveries as f64,
        );
    }
    result.metric("rounds_done", rounds_sent as f64);
    result.metric("per_round", per_round as f64);
    result.metric(
        "missing",
        (rounds_sent * per_round).saturating_sub(deliveries) as f64,
    );
    if board.stray() > 0 {
        result.fail(format!("{} deliveries of unknown rounds", board.stray()));
    }
    let mut last_us = Vec::with_capacity(rounds_sent);
    for (i, sent) in sent_ns.iter().enumerate() {
        if let Some((_, last)) = board.times(i) {
            last_us.push(last.saturating_sub(*sent) / 1000);
        }
    }
    let last = Samples::new(last_us);
    result.metric("last_ms", last.ms(0.5));
    result.metric("last_p99_ms", last.ms(0.99));
    result.metric("last_max_ms", last.ms(1.0));
    check_alive(result, &ctx.probe);
}
