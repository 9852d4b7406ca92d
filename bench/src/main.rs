//! socketlet-bench: the load generator of socketlet's benchmark, and its report.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 itself (WebSocket through a minimal client of its own, `ws`, a small
//! HTTP/1.1 client for long-polling) and loads one server at a time with one scenario:
//!
//! - `idle`: resident memory per idle connection (WebSocket or polling);
//! - `connect`: handshakes per second (WebSocket, polling, polling then upgrade);
//! - `echo`: echo with ack, closed loop (CPU per ack, acks/s) or open loop at a fixed rate
//!   (latency from the scheduled send time);
//! - `broadcast`: fan-out to every socket (CPU per delivery, first and last delivery);
//! - `polling`: long-polling request throughput;
//! - `cluster`: broadcasts across the nodes of a cluster on Redis, made by a client or by an
//!   emitter process (deliveries per second, CPU per delivery summed over the nodes);
//! - `api`: emits through the binary's server API (`POST /api/emit`);
//! - `recovery`: what connection state recovery keeps in memory, per kept session (clients
//!   dropped abruptly) and per stored packet;
//! - `slow-post`: a burst of slow-loris POST bodies, and the memory given back after it;
//! - `soak`: many clients for a long time, with echos and broadcasts: errors, RSS drift and
//!   latency over time, sampled in windows (`soak-report` writes its report and plots).
//!
//! With `--pid` it reads the server's CPU time (`utime + stime`) and RSS from `/proc` around
//! the measured phase only. Each run writes one JSON result; `report` turns a directory of them
//! into `REPORT.md` and SVG plots. `hook-backend` is the minimal backend of the hook cells.
//! `bench/run.sh` drives it all.

mod backend;
mod client;
mod http;
mod net;
mod procfs;
mod proto;
mod report;
mod scenarios;
mod stats;
mod svg;
mod ws;

use clap::{Parser, Subcommand};
use scenarios::api::ApiArgs;
use scenarios::broadcast::BroadcastArgs;
use scenarios::cluster::ClusterArgs;
use scenarios::connect::ConnectArgs;
use scenarios::echo::EchoArgs;
use scenarios::idle::IdleArgs;
use scenarios::polling::PollingArgs;
use scenarios::recovery::RecoveryArgs;
use scenarios::slow_post::SlowPostArgs;
use scenarios::soak::SoakArgs;
use scenarios::Ctx;
use stats::RunResult;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Errors of the generator.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(version, about = "Load generator and report of socketlet's benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Idle connections: RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Connection rate: handshakes per second.
    Connect {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ConnectArgs,
    },
    /// Echo with ack: CPU per ack, throughput, open-loop latency.
    Echo {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: EchoArgs,
    },
    /// Broadcast fan-out: CPU per delivery, first and last delivery.
    Broadcast {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: BroadcastArgs,
    },
    /// Long-polling request throughput.
    Polling {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: PollingArgs,
    },
    /// Broadcasts across the nodes of a cluster (on Redis), from a client or an emitter.
    Cluster {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ClusterArgs,
    },
    /// Emits through the binary's server API (`POST /api/emit`).
    Api {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ApiArgs,
    },
    /// Connection state recovery: RSS per kept session and per stored packet.
    Recovery {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: RecoveryArgs,
    },
    /// A burst of slow-loris POST bodies, and the memory given back after it.
    SlowPost {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: SlowPostArgs,
    },
    /// A soak: many clients for a long time, with echos and broadcasts, sampled in windows.
    Soak {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: SoakArgs,
    },
    /// Writes REPORT.md and the plots from a directory of results.
    Report(report::ReportArgs),
    /// Writes the soak's report and plots from its result.
    SoakReport(report::SoakReportArgs),
    /// A minimal backend for the binary's event hook: answers every POST with its `args` as
    /// the ack.
    HookBackend(backend::BackendArgs),
}

/// Options of every scenario.
#[derive(Debug, Clone, clap::Args)]
struct Common {
    /// The server's address (127.0.0.0/8 only).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The server's process id, to read its CPU time and RSS from /proc (repeat it for a
    /// server of several processes, a cluster's nodes: their figures are summed).
    #[arg(long)]
    pid: Vec<u32>,
    /// An auxiliary process (a Redis, a hook backend) whose CPU time is measured apart
    /// (`aux_cpu_us_per_op`); repeatable.
    #[arg(long)]
    aux_pid: Vec<u32>,
    /// The Engine.IO revision spoken: 4 (Socket.IO v5) or 3 (Socket.IO v4).
    #[arg(long, value_enum, default_value = "4")]
    eio: proto::Eio,
    /// The server's name, recorded in the result.
    #[arg(long, default_value = "server")]
    server: String,
    /// The cell name, recorded in the result.
    #[arg(long, default_value = "")]
    cell: String,
    /// Where to write the JSON result (stdout gets a summary either way).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Source addresses to connect from: 127.0.0.1 ... 127.0.0.N.
    #[arg(long, default_value_t = 4)]
    sources: usize,
    /// Connection handshakes in flight at once while setting up clients.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Seconds allowed for one handshake or operation.
    #[arg(long, default_value_t = 10.0)]
    op_timeout: f64,
    /// Seconds the whole scenario may take; nothing new starts after that.
    #[arg(long, default_value_t = 60.0)]
    max_secs: f64,
    /// Seconds a measured phase (connect, echo max, broadcast, polling) may start new
    /// operations; 0 is no limit. Slow servers then do fewer operations, which is no failure.
    #[arg(long, default_value_t = 0.0)]
    budget_secs: f64,
    /// Generator threads (1: a current-thread runtime, the default).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn run_scenario(cmd: Cmd, common: Common, result: &mut RunResult) -> Result<(), BoxError> {
    let ctx = Ctx {
        target: net::Target::new(common.addr, common.sources)?.with_eio(common.eio),
        probe: procfs::Probe::new(&common.pid, &common.aux_pid),
        concurrency: common.concurrency,
        op_timeout: Duration::from_secs_f64(common.op_timeout),
        deadline: Instant::now() + Duration::from_secs_f64(common.max_secs),
        budget: (common.budget_secs > 0.0).then(|| Duration::from_secs_f64(common.budget_secs)),
    };
    match cmd {
        Cmd::Idle { args, .. } => scenarios::idle::run(&ctx, &args, result).await,
        Cmd::Connect { args, .. } => scenarios::connect::run(&ctx, &args, result).await,
        Cmd::Echo { args, .. } => scenarios::echo::run(&ctx, &args, result).await,
        Cmd::Broadcast { args, .. } => scenarios::broadcast::run(&ctx, &args, result).await,
        Cmd::Polling { args, .. } => scenarios::polling::run(&ctx, &args, result).await,
        Cmd::Cluster { args, .. } => scenarios::cluster::run(&ctx, &args, result).await,
        Cmd::Api { args, .. } => scenarios::api::run(&ctx, &args, result).await,
        Cmd::Recovery { args, .. } => scenarios::recovery::run(&ctx, &args, result).await,
        Cmd::SlowPost { args, .. } => scenarios::slow_post::run(&ctx, &args, result).await,
        Cmd::Soak { args, .. } => scenarios::soak::run(&ctx, &args, result).await,
        Cmd::Report(_) | Cmd::SoakReport(_) | Cmd::HookBackend(_) => {}
    }
    Ok(())
}

fn scenario(cmd: Cmd) -> Result<bool, BoxError> {
    let (name, common) = match &cmd {
        Cmd::Idle { common, .. } => ("idle", common),
        Cmd::Connect { common, .. } => ("connect", common),
        Cmd::Echo { common, .. } => ("echo", common),
        Cmd::Broadcast { common, .. } => ("broadcast", common),
        Cmd::Polling { common, .. } => ("polling", common),
        Cmd::Cluster { common, .. } => ("cluster", common),
        Cmd::Api { common, .. } => ("api", common),
        Cmd::Recovery { common, .. } => ("recovery", common),
        Cmd::SlowPost { common, .. } => ("slow-post", common),
        Cmd::Soak { common, .. } => ("soak", common),
        Cmd::Report(_) | Cmd::SoakReport(_) | Cmd::HookBackend(_) => {
            return Err("not a scenario".into())
        }
    };
    let common = common.clone();
    let mut result = RunResult::new(name, &common.cell, &common.server);
    if let Some(limit) = nofile_limit() {
        result.param("gen_nofile", limit);
    }
    if common.budget_secs > 0.0 {
        result.param("budget_secs", common.budget_secs);
    }
    if common.eio == proto::Eio::V3 {
        result.param("eio", 3);
    }
    let runtime = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(common.threads)
            .enable_all()
            .build()?
    };
    // A hard stop a little after the scenario's own deadline.
    let hard = Duration::from_secs_f64(common.max_secs + 2.0 * common.op_timeout + 10.0);
    let outcome = runtime.block_on(async {
        tokio::time::timeout(hard, run_scenario(cmd, common.clone(), &mut result)).await
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => result.fail(e),
        Err(_) => result.fail(format!("the scenario did not end within {hard:?}")),
    }
    // Connections close (with RST) when the runtime goes.
    runtime.shutdown_timeout(Duration::from_secs(2));

    let json = serde_json::to_string_pretty(&result)?;
    if let Some(path) = &common.out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &json)?;
    }
    let figures: Vec<String> = result
        .metrics
        .iter()
        .map(|(k, v)| format!("{k}={v:.3}"))
        .collect();
    println!(
        "{} {} {}: {} {}",
        result.server,
        result.cell,
        name,
        if result.ok { "ok" } else { "FAILED" },
        figures.join(" ")
    );
    for e in &result.errors {
        println!("  error: {e}");
    }
    Ok(result.ok)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.cmd {
        Cmd::Report(args) => report::run(&args).map(|()| true),
        Cmd::SoakReport(args) => report::soak(&args).map(|()| true),
        Cmd::HookBackend(args) => backend::run(&args).map(|()| true),
        cmd => scenario(cmd),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("socketlet-bench: {e}");
            ExitCode::from(2)
        }
    }
}
