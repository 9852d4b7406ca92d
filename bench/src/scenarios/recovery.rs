//! Scenario 9: what connection state recovery costs in memory (issue 23).
//!
//! A server with recovery on keeps the session of a socket that lost its connection (its id,
//! rooms and data, for `max_disconnection_duration`) and every packet broadcast meanwhile (to
//! replay the ones a session missed). Clients here are Socket.IO v5 over WebSocket; a client
//! is dropped abruptly, as a laptop that sleeps or a proxy that cuts the line: its TCP socket
//! is closed with `SO_LINGER=0` (a RST) and no DISCONNECT is sent, so the server keeps its
//! session. Before it is dropped, every client gets one broadcast, so that it has an offset to
//! recover from (socket.io-client sends `{pid, offset}`; a session without an offset cannot be
//! recovered). One more client, the sender, stays connected and makes the broadcasts.
//!
//! `--measure sessions`: `warmup` clients connect (and stay), the RSS settles (the baseline);
//! then `cycles` times: `conns` clients connect, the RSS settles (connected), they are
//! dropped, the RSS settles (dropped). Figures: RSS per connected client and per dropped client
//! (first cycle, over the baseline), and the growth from the end of the first cycle to the end
//! of the last per session kept meanwhile: the later cycles' connections reuse the memory the
//! first cycle's gave back to the allocator, so what grows is what is kept, the sessions
//! (against a server without recovery: ~0, the control).
//!
//! `--measure packets`: `conns` clients connect and are dropped (their sessions kept), the RSS
//! settles; the sender then broadcasts `packets` events to everyone (itself, the one live
//! socket), one at a time, each with one argument of `payload` bytes of JSON; the RSS settles.
//! Figures: the server's CPU per broadcast, and the RSS growth per packet sent and per packet
//! stored (the store keeps at most `max_packets`, the oldest going first: past the bound the
//! figure per packet sent falls, the one per packet stored should not move).
//!
//! Both end by recovering `verify` kept sessions (`40{"pid":...,"offset":...}`): with the
//! offset still stored, the server must give the socket back (same sid) with exactly the
//! broadcasts it missed before the CONNECT answer; with the offset gone (more than
//! `max_packets` broadcasts since), a fresh socket. A server without recovery (no `pid` in its
//! CONNECT answers) is the control: nothing to verify.

use super::{check_alive, put_window, settle, Ctx};
use crate::client::{answer, connect_ws, connect_ws_as, recv, send, Ws};
use crate::proto::{
    broadcast_packet, event_offset, is_broadcast, padded_broadcast_packet, recover_packet,
    Connected, Eio, Incoming,
};
use crate::stats::RunResult;
use crate::BoxError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinSet;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Measure {
    /// RSS per kept session.
    Sessions,
    /// RSS per stored packet, and CPU per broadcast.
    Packets,
}

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RecoveryArgs {
    /// What is measured.
    #[arg(long, value_enum, default_value = "sessions")]
    pub(crate) measure: Measure,
    /// Clients connected then dropped abruptly (sessions: in each cycle; packets: the sessions
    /// kept while the broadcasts are stored).
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: usize,
    /// Sessions: rounds of `conns` clients connected then dropped (at least 2 for the figure
    /// per kept session).
    #[arg(long, default_value_t = 2)]
    pub(crate) cycles: usize,
    /// Sessions: clients connected (and kept connected) before the baseline reading.
    #[arg(long, default_value_t = 100)]
    pub(crate) warmup: usize,
    /// Packets: broadcasts to everyone while the sessions are kept.
    #[arg(long, default_value_t = 8000)]
    pub(crate) packets: usize,
    /// Packets: bytes of the JSON text of each broadcast's one argument (a string).
    #[arg(long, default_value_t = 100)]
    pub(crate) payload: usize,
    /// The server's bound on stored packets (`RecoveryConfig::max_packets`, 10,000 by
    /// default): what to expect.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_packets: usize,
    /// Kept sessions recovered at the end, to check that the server kept them.
    #[arg(long, default_value_t = 10)]
    pub(crate) verify: usize,
    /// Least time to wait for the RSS to settle, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) settle_ms: u64,
}

/// A broadcast to send: its packet for an ack id, and where to say it was acked.
type Order = (
    Box<dyn FnOnce(u64) -> String + Send>,
    oneshot::Sender<Result<(), BoxError>>,
);

/// The client that stays connected and broadcasts: a task of its own that answers PINGs
/// between broadcasts, whatever the scenario is doing meanwhile.
struct Sender {
    orders: mpsc::Sender<Order>,
}

impl Sender {
    async fn start(ctx: &Ctx) -> Result<Sender, BoxError> {
        let mut ws = ctx.timed(connect_ws(&ctx.target)).await?;
        let (orders, mut rx) = mpsc::channel::<Order>(1);
        tokio::spawn(async move {
            let mut id = 0u64;
            loop {
                tokio::select! {
                    order = rx.recv() => {
                        let Some((packet, done)) = order else { return };
                        id += 1;
                        let r = send_acked(&mut ws, packet(id), id).await;
                        let failed = r.is_err();
                        let _ = done.send(r);
                        if failed {
                            return;
                        }
                    }
                    r = recv(&mut ws) => match r {
                        Ok(Some(text)) => {
                            if answer(&mut ws, &text).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    },
                }
            }
        });
        Ok(Sender { orders })
    }

    /// Sends the broadcast `packet(ack id)` and waits for its ack.
    async fn broadcast(
        &self,
        ctx: &Ctx,
        packet: impl FnOnce(u64) -> String + Send + 'static,
    ) -> Result<(), BoxError> {
        let (done, acked) = oneshot::channel();
        self.orders
            .send((Box::new(packet), done))
            .await
            .map_err(|_| "the sender's connection ended")?;
        ctx.timed(async { acked.await.map_err(|_| "the sender's connection ended")? })
            .await
    }
}

/// Sends `packet` and waits for the ack `id` (the sender's own copy of the broadcast comes
/// first, and is passed over).
async fn send_acked(ws: &mut Ws, packet: String, id: u64) -> Result<(), BoxError> {
    send(ws, packet).await?;
    loop {
        let text = recv(ws).await?.ok_or("the sender's connection ended")?;
        if answer(ws, &text).await? == Incoming::Ack(id) {
            return Ok(());
        }
    }
}

/// What is left of a client dropped abruptly: what it needs to recover.
#[derive(Debug, Clone)]
struct Kept {
    sid: String,
    pid: Option<String>,
    /// The offset of the last broadcast it got.
    offset: Option<String>,
}

/// Clients that got at least one broadcast.
#[derive(Default)]
struct Seen {
    count: AtomicUsize,
    more: Notify,
}

/// Holds one connected client: answers PINGs and keeps the offset of each broadcast until told
/// to stop, then drops the connection abruptly (`SO_LINGER=0`: a RST, no DISCONNECT).
async fn hold(
    mut ws: Ws,
    connected: Connected,
    mut stop: watch::Receiver<bool>,
    seen: Arc<Seen>,
) -> Result<Kept, BoxError> {
    let mut offset = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = recv(&mut ws) => match r? {
                Some(text) if is_broadcast(&text) => {
                    if offset.is_none() {
                        seen.count.fetch_add(1, Ordering::AcqRel);
                        seen.more.notify_one();
                    }
                    offset = Some(event_offset(&text).unwrap_or_default());
                }
                Some(text) => {
                    answer(&mut ws, &text).await?;
                }
                None => return Err("the connection ended on its own".into()),
            },
        }
    }
    drop(ws);
    Ok(Kept {
        sid: connected.sid,
        pid: connected.pid,
        offset: offset.filter(|o| !o.is_empty()),
    })
}

/// Clients connected together, each held by a task.
struct Batch {
    n: usize,
    stop: watch::Sender<bool>,
    seen: Arc<Seen>,
    tasks: JoinSet<Result<Kept, BoxError>>,
}

impl Batch {
    /// Connects `n` clients (`None`, and failures recorded, unless all did).
    async fn connect(ctx: &Ctx, n: usize, result: &mut RunResult) -> Option<Batch> {
        let many = ctx
            .run_many(n, ctx.concurrency, None, |_| {
                connect_ws_as(&ctx.target, "40")
            })
            .await;
        let clients = many.all_connected(n, result, &ctx.probe)?;
        let mut batch = Batch {
            n,
            stop: watch::channel(false).0,
            seen: Arc::default(),
            tasks: JoinSet::new(),
        };
        for (ws, connected, _) in clients {
            let stop = batch.stop.subscribe();
            batch
                .tasks
                .spawn(hold(ws, connected, stop, batch.seen.clone()));
        }
        Some(batch)
    }

    /// One broadcast to everyone, and its delivery to every client of the batch (which then
    /// has an offset to recover from).
    async fn prime(&self, ctx: &Ctx, sender: &Sender, round: u64) -> Result<(), BoxError> {
        sender
            .broadcast(ctx, move |id| broadcast_packet(id, round))
            .await?;
        let all = async {
            while self.seen.count.load(Ordering::Acquire) < self.n {
                self.seen.more.notified().await;
            }
        };
        tokio::time::timeout(ctx.op_timeout, all)
            .await
            .map_err(|_| {
                format!(
                    "{} of {} clients got the broadcast",
                    self.seen.count.load(Ordering::Acquire),
                    self.n
                )
            })?;
        Ok(())
    }

    /// Drops every client abruptly; what each needs to recover.
    async fn drop_all(mut self, result: &mut RunResult) -> Vec<Kept> {
        let _ = self.stop.send(true);
        let mut kept = Vec::with_capacity(self.n);
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(k)) => kept.push(k),
                Ok(Err(e)) => result.fail(format!("client: {e}")),
                Err(e) => result.fail(format!("client task: {e}")),
            }
        }
        kept
    }
}

/// Whether the server has recovery on, from its CONNECT answers: a `pid` (and an offset on
/// the broadcast) for every client; a mix is a failure.
fn recovery_on(kept: &[Kept], result: &mut RunResult) -> bool {
    let with_pid = kept.iter().filter(|k| k.pid.is_some()).count();
    let with_offset = kept.iter().filter(|k| k.offset.is_some()).count();
    result.metric("pid_seen", with_pid as f64);
    if with_pid > 0 && (with_pid < kept.len() || with_offset < kept.len()) {
        result.fail(format!(
            "of {} clients, {with_pid} got a pid and {with_offset} an offset",
            kept.len()
        ));
    }
    with_pid > 0
}

/// What recovering kept sessions gave: recovered (same sid) and fresh sockets, and the
/// missed broadcasts of each recovered one.
#[derive(Debug, Default, PartialEq)]
struct Verified {
    recovered: usize,
    fresh: usize,
    missed: Vec<usize>,
}

/// Recovers each of `kept` (with its pid and offset), then drops it again abruptly.
async fn verify(ctx: &Ctx, kept: &[Kept], result: &mut RunResult) -> Verified {
    let mut v = Verified::default();
    for k in kept {
        let (Some(pid), Some(offset)) = (&k.pid, &k.offset) else {
            continue;
        };
        match ctx
            .timed(connect_ws_as(&ctx.target, &recover_packet(pid, offset)))
            .await
        {
            Ok((ws, connected, before)) => {
                if connected.sid == k.sid {
                    v.recovered += 1;
                    v.missed
                        .push(before.iter().filter(|p| is_broadcast(p)).count());
                } else {
                    v.fresh += 1;
                }
                drop(ws);
            }
            Err(e) => result.fail(format!("recovering a session: {e}")),
        }
    }
    v
}

/// The checks of a verification: `expect_missed` when the sessions should have recovered,
/// `None` when their offset is gone and they should come back fresh.
fn check(v: &Verified, tried: usize, expect_missed: Option<usize>) -> Result<(), String> {
    match expect_missed {
        Some(n) => {
            if v.recovered != tried {
                return Err(format!(
                    "{} of {tried} kept sessions recovered ({} came back as fresh sockets)",
                    v.recovered, v.fresh
                ));
            }
            if let Some(m) = v.missed.iter().find(|&&m| m != n) {
                return Err(format!(
                    "a recovered session got {m} missed broadcasts, not {n}"
                ));
            }
        }
        None => {
            if v.fresh != tried {
                return Err(format!(
                    "{} of {tried} sessions whose offset is no longer stored came back fresh",
                    v.fresh
                ));
            }
        }
    }
    Ok(())
}

/// Packets stored after `sent` broadcasts following the prime one, under a bound of `max`.
fn stored_after(sent: usize, max: usize) -> usize {
    (1 + sent).min(max)
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx, args: &RecoveryArgs, result: &mut RunResult) {
    if ctx.target.eio() == Eio::V3 {
        result.fail("connection state recovery is Socket.IO v5 (Engine.IO v4) only");
        return;
    }
    result.param("measure", format!("{:?}", args.measure).to_lowercase());
    result.param("conns", args.conns);
    let sender = match Sender::start(ctx).await {
        Ok(s) => s,
        Err(e) => {
            result.fail(format!("the sender: {e}"));
            check_alive(result, &ctx.probe);
            return;
        }
    };
    match args.measure {
        Measure::Sessions => sessions(ctx, args, &sender, result).await,
        Measure::Packets => packets(ctx, args, &sender, result).await,
    }
    check_alive(result, &ctx.probe);
}

async fn sessions(ctx: &Ctx, args: &RecoveryArgs, sender: &Sender, result: &mut RunResult) {
    result.param("cycles", args.cycles);
    result.param("warmup", args.warmup);
    let settle_min = Duration::from_millis(args.settle_ms);
    let n = args.conns.max(1);
    // Warm-up clients stay connected to the end (they get every prime broadcast too).
    let warm = match args.warmup {
        0 => None,
        w => match Batch::connect(ctx, w, result).await {
            Some(b) => Some(b),
            None => return,
        },
    };
    let base = settle(ctx, settle_min).await;
    let mut connected_rss = Vec::new();
    let mut dropped_rss = Vec::new();
    let mut first: Vec<Kept> = Vec::new();
    let mut on = None;
    for cycle in 0..args.cycles.max(1) {
        let Some(batch) = Batch::connect(ctx, n, result).await else {
            return;
        };
        connected_rss.push(settle(ctx, settle_min).await);
        if let Err(e) = batch.prime(ctx, sender, cycle as u64).await {
            result.fail(format!("cycle {cycle}: {e}"));
            return;
        }
        let before = ctx.probe.sample();
        let kept = batch.drop_all(result).await;
        dropped_rss.push(settle(ctx, settle_min).await);
        let after = ctx.probe.sample();
        if cycle == 0 {
            // The server's CPU per abrupt close (with recovery: persisting the session).
            let w = before.until(&after);
            if ctx.probe.has_server() {
                result.metric("server_cpu_us_per_close", w.server_cpu * 1e6 / n as f64);
            }
            result.metric("other_cpu_pct", w.other_cpu_pct);
            on = Some(recovery_on(&kept, result));
            first = kept;
        }
    }
    let on = on.unwrap_or(false);
    result.param("recovery", on);
    if ctx.probe.has_server() {
        let per = |v: u64, from: u64, count: usize| (v as f64 - from as f64) / count as f64;
        result.metric("rss_base_kib", base as f64);
        result.metric("rss_connected_kib", connected_rss[0] as f64);
        result.metric("rss_dropped_kib", dropped_rss[0] as f64);
        result.metric("rss_per_conn_kib", per(connected_rss[0], base, n));
        result.metric("rss_dropped_per_conn_kib", per(dropped_rss[0], base, n));
        if let Some(&last) = dropped_rss.last().filter(|_| dropped_rss.len() > 1) {
            result.metric("rss_dropped_last_kib", last as f64);
            result.metric(
                "rss_per_kept_session_kib",
                per(last, dropped_rss[0], n * (dropped_rss.len() - 1)),
            );
        }
    }
    if on {
        // The first cycle's sessions missed the later cycles' prime broadcasts.
        let tried: Vec<Kept> = first.iter().take(args.verify).cloned().collect();
        let v = verify(ctx, &tried, result).await;
        result.metric("verified", tried.len() as f64);
        result.metric("recovered", v.recovered as f64);
        if let Err(e) = check(&v, tried.len(), Some(args.cycles.max(1) - 1)) {
            result.fail(e);
        }
    }
    if let Some(warm) = warm {
        let _ = warm.drop_all(result).await;
    }
}

async fn packets(ctx: &Ctx, args: &RecoveryArgs, sender: &Sender, result: &mut RunResult) {
    result.param("packets", args.packets);
    result.param("payload", args.payload);
    result.param("max_packets", args.max_packets);
    let settle_min = Duration::from_millis(args.settle_ms);
    let Some(batch) = Batch::connect(ctx, args.conns.max(1), result).await else {
        return;
    };
    if let Err(e) = batch.prime(ctx, sender, 0).await {
        result.fail(format!("the prime broadcast: {e}"));
        return;
    }
    let kept = batch.drop_all(result).await;
    let on = recovery_on(&kept, result);
    result.param("recovery", on);
    let rss_before = settle(ctx, settle_min).await;

    // The RSS is also read half-way (the growth is synchronous: no settling needed).
    let half = args.packets / 2;
    let mut rss_half = None;
    let before = ctx.probe.sample();
    let payload = args.payload;
    let mut sent = 0usize;
    for _ in 0..args.packets {
        if ctx.late() {
            result.fail(format!(
                "time is up after {sent} of {} broadcasts",
                args.packets
            ));
            break;
        }
        if let Err(e) = sender
            .broadcast(ctx, move |id| padded_broadcast_packet(id, payload))
            .await
        {
            result.fail(format!("broadcast {sent}: {e}"));
            break;
        }
        sent += 1;
        if sent == half {
            rss_half = ctx.probe.server_rss_kib();
        }
    }
    let after = ctx.probe.sample();
    // Per broadcast: logged (with recovery), delivered to the one live socket, acked.
    put_window(result, &before.until(&after), sent as f64, &ctx.probe);
    let rss_after = settle(ctx, settle_min).await;
    if ctx.probe.has_server() && sent > 0 {
        put_packet_rss(
            result,
            &PacketRss {
                before: rss_before,
                half: rss_half.filter(|_| sent == args.packets && half > 0),
                after: rss_after,
                half_sent: half,
                sent,
                max_packets: args.max_packets,
                recovery: on,
            },
        );
    }
    if on {
        // Kept since the prime broadcast: recovered with every broadcast since, unless the
        // prime one is no longer stored.
        let tried: Vec<Kept> = kept.iter().take(args.verify).cloned().collect();
        let v = verify(ctx, &tried, result).await;
        result.metric("verified", tried.len() as f64);
        result.metric("recovered", v.recovered as f64);
        result.metric("recovered_fresh", v.fresh as f64);
        let expect = (stored_after(sent, args.max_packets) == 1 + sent).then_some(sent);
        if let Err(e) = check(&v, tried.len(), expect) {
            result.fail(e);
        }
    }
}

/// The RSS readings of the packets phase (KiB).
struct PacketRss {
    before: u64,
    /// Half-way, when the phase ran in full.
    half: Option<u64>,
    after: u64,
    half_sent: usize,
    sent: usize,
    max_packets: usize,
    recovery: bool,
}

/// The figures of the packets phase: RSS growth per packet sent and per packet stored over the
/// whole phase, and over its second half (`rss_marginal_per_packet_kib`: by then the memory the
/// dropped connections gave back to the allocator, which the first packets partly reuse, is
/// less of it), or the second half's growth in all once the store is full (~0 if bounded).
fn put_packet_rss(result: &mut RunResult, r: &PacketRss) {
    let kib = |a: u64, b: u64| a as f64 - b as f64;
    let growth = kib(r.after, r.before);
    result.metric("rss_before_kib", r.before as f64);
    result.metric("rss_after_kib", r.after as f64);
    result.metric("rss_growth_kib", growth);
    result.metric("rss_per_sent_packet_kib", growth / r.sent as f64);
    let stored = if r.recovery {
        stored_after(r.sent, r.max_packets)
    } else {
        0
    };
    if r.recovery {
        result.metric("stored_packets", stored as f64);
        if stored > 1 {
            result.metric("rss_per_stored_packet_kib", growth / (stored - 1) as f64);
        }
    }
    if let Some(half) = r.half {
        let second = kib(r.after, half);
        result.metric("rss_half_kib", half as f64);
        result.metric("rss_second_half_kib", second);
        let stored_half = if r.recovery {
            stored_after(r.half_sent, r.max_packets)
        } else {
            0
        };
        if stored > stored_half {
            result.metric(
                "rss_marginal_per_packet_kib",
                second / (stored - stored_half) as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_under_the_bound() {
        assert_eq!(stored_after(0, 10_000), 1);
        assert_eq!(stored_after(8000, 10_000), 8001);
        assert_eq!(stored_after(9999, 10_000), 10_000);
        assert_eq!(stored_after(20_000, 10_000), 10_000);
    }

    #[test]
    fn packet_figures_under_and_past_the_bound() {
        let mut r = RunResult::new("recovery", "", "");
        let mut rss = PacketRss {
            before: 1000,
            half: Some(3000),
            after: 5400,
            half_sent: 4000,
            sent: 8000,
            max_packets: 10_000,
            recovery: true,
        };
        put_packet_rss(&mut r, &rss);
        let m = |r: &RunResult, k: &str| r.metrics.get(k).copied();
        assert_eq!(m(&r, "rss_growth_kib"), Some(4400.0));
        assert_eq!(m(&r, "rss_per_sent_packet_kib"), Some(0.55));
        assert_eq!(m(&r, "rss_per_stored_packet_kib"), Some(0.55));
        assert_eq!(m(&r, "rss_marginal_per_packet_kib"), Some(0.6));
        // Past the bound: 10,000 stored; the second half stores nothing more.
        let mut r = RunResult::new("recovery", "", "");
        rss.sent = 40_000;
        rss.half_sent = 20_000;
        rss.half = Some(6500);
        rss.after = 6510;
        put_packet_rss(&mut r, &rss);
        assert_eq!(m(&r, "stored_packets"), Some(10_000.0));
        assert_eq!(m(&r, "rss_second_half_kib"), Some(10.0));
        assert_eq!(m(&r, "rss_marginal_per_packet_kib"), None);
        // Without recovery nothing is stored.
        let mut r = RunResult::new("recovery", "", "");
        rss.recovery = false;
        put_packet_rss(&mut r, &rss);
        assert_eq!(m(&r, "stored_packets"), None);
        assert_eq!(m(&r, "rss_per_stored_packet_kib"), None);
        assert_eq!(m(&r, "rss_second_half_kib"), Some(10.0));
    }

    #[test]
    fn checks_of_the_recovered_sessions() {
        let ok = Verified {
            recovered: 2,
            fresh: 0,
            missed: vec![5, 5],
        };
        assert_eq!(check(&ok, 2, Some(5)), Ok(()));
        assert!(check(&ok, 2, Some(4)).unwrap_err().contains("got 5 missed"));
        assert!(check(&ok, 3, Some(5)).unwrap_err().contains("2 of 3"));
        assert!(check(&ok, 2, None).is_err());
        let fresh = Verified {
            recovered: 0,
            fresh: 2,
            missed: vec![],
        };
        assert_eq!(check(&fresh, 2, None), Ok(()));
        assert!(check(&fresh, 2, Some(0)).is_err());
    }

    #[test]
    fn recovery_is_on_when_every_client_got_a_pid() {
        let kept = |pid: Option<&str>, offset: Option<&str>| Kept {
            sid: "s".into(),
            pid: pid.map(Into::into),
            offset: offset.map(Into::into),
        };
        let mut r = RunResult::new("recovery", "", "");
        assert!(recovery_on(&[kept(Some("p"), Some("1"))], &mut r));
        assert!(r.ok);
        assert!(!recovery_on(&[kept(None, None)], &mut r));
        assert!(r.ok);
        assert!(recovery_on(
            &[kept(Some("p"), Some("1")), kept(None, None)],
            &mut r
        ));
        assert!(!r.ok);
    }
}
