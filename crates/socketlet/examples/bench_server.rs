//! The socketlet server of the benchmark harness (`bench/`, `bench/run.sh`).
//!
//! Event contract, identical on every server of the benchmark:
//! - namespace `/` only;
//! - `echo`: acks its arguments back;
//! - `broadcast` (with an ack): emits `broadcast` with the given arguments to every socket of `/`
//!   (the sender included), then acks `true`;
//! - `join` (with an ack): the socket joins the room `bench`, then acks `true`;
//! - `broadcast_room` (with an ack): emits `broadcast` with the given arguments to the room
//!   `bench`, then acks `true`.
//!
//! It runs on one tokio worker thread by default (`--workers 1`, a current-thread runtime), like
//! the socketioxide peer; `--workers N` (N > 1) uses a multi-thread runtime. With `--redis URL`
//! it joins a cluster of nodes through that Redis (`--redis-sharded MODE`: sharded pub/sub);
//! with `--metrics` the Prometheus metrics of `socketlet-ops` observe everything it does (they
//! are not served: the benchmark measures what keeping them costs). With `--recovery-secs N`
//! (N > 0) connection state recovery is on: sessions kept N seconds, Node's defaults otherwise
//! (middlewares skipped; `RecoveryConfig`'s bounds: 10,000 packets, 64 MiB, 100,000 sessions).
//! Logs are off unless `--log FILTER` is given. It prints `LISTENING <port>` once it accepts
//! connections.

use clap::Parser;
use socketlet::{AckSender, Data, Socket, SocketIo};

/// The room of `join` and `broadcast_room`.
const ROOM: &str = "bench";

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Tokio worker threads: 1 is a current-thread runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// A tracing filter (e.g. `warn`, `socketlet=debug`); logs are off without it.
    #[arg(long)]
    log: Option<String>,
    /// Join a cluster of nodes through this Redis (e.g. redis://127.0.0.1:6379).
    #[arg(long)]
    redis: Option<String>,
    /// With --redis: sharded pub/sub with this subscription mode (static, dynamic,
    /// dynamic-private).
    #[arg(long, value_name = "MODE")]
    redis_sharded: Option<socketlet_redis::SubscriptionMode>,
    /// With --redis: also deliver what python-socketio's RedisManager publishes on this channel.
    #[arg(long)]
    python_channel: Option<String>,
    /// Keep Prometheus metrics (socketlet-ops' observer) of everything the server does.
    #[arg(long)]
    metrics: bool,
    /// Connection state recovery: a disconnected socket's session and the packets it may miss
    /// are kept this many seconds (Node's default is 120); the other settings are Node's and
    /// `RecoveryConfig`'s defaults. 0: off.
    #[arg(long, default_value_t = 0)]
    recovery_secs: u64,
}

async fn echo(data: Data, ack: AckSender) {
    let _ = ack.send(data);
}

async fn broadcast(socket: Socket, data: Data, ack: AckSender) {
    let _ = socket.ns().emit("broadcast", data);
    let _ = ack.send(true);
}

async fn join(socket: Socket, ack: AckSender) {
    socket.join([ROOM]);
    let _ = ack.send(true);
}

async fn broadcast_room(socket: Socket, data: Data, ack: AckSender) {
    let _ = socket.ns().to(ROOM).emit("broadcast", data);
    let _ = ack.send(true);
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = SocketIo::builder();
    if args.recovery_secs > 0 {
        builder = builder.connection_state_recovery(
            socketlet::RecoveryConfig::default().with_max_disconnection_duration(
                std::time::Duration::from_secs(args.recovery_secs),
            ),
        );
    }
    let cluster = match &args.redis {
        Some(url) => {
            let config = socketlet_redis::RedisConfig::new(url.clone())
                .with_sharded(args.redis_sharded)
                .with_python_channel(args.python_channel.clone());
            let cluster = socketlet_redis::RedisCluster::connect(config).await?;
            builder = builder.adapter(cluster.adapter_factory());
            Some(cluster)
        }
        None => None,
    };
    let io = builder.build();
    if let Some(cluster) = &cluster {
        cluster.attach(&io);
    }
    // Kept alive for the server's life: the observer holds the series.
    let _metrics = args.metrics.then(|| {
        let metrics = socketlet_ops::Metrics::new();
        io.observe(std::sync::Arc::new(metrics.clone()));
        metrics
    });
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on("echo", echo);
        socket.on("broadcast", broadcast);
        socket.on("join", join);
        socket.on("broadcast_room", broadcast_room);
    });
    let listener = socketlet::bind(([127, 0, 0, 1], args.port).into())?;
    println!("LISTENING {}", listener.local_addr()?.port());
    socketlet::serve(listener, io.service(), std::future::pending()).await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(filter) = &args.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = if args.workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}
