//! The socketlet server of the benchmark harness (`bench/`, `bench/run.sh`).
//!
//! Event contract, identical on every server of the benchmark:
//! - namespace `/` only;
//! - `echo`: acks its arguments back;
//! - `broadcast` (with an ack): emits `broadcast` with the given arguments to every socket of `/`
//!   (the sender included), then acks `true`.
//!
//! It runs on one tokio worker thread by default (`--workers 1`, a current-thread runtime), like
//! the socketioxide peer; `--workers N` (N > 1) uses a multi-thread runtime. Logs are off unless
//! `--log FILTER` is given. It prints `LISTENING <port>` once it accepts connections.

use clap::Parser;
use socketlet::{AckSender, Data, Socket, SocketIo};

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
}

async fn echo(data: Data, ack: AckSender) {
    let _ = ack.send(data);
}

async fn broadcast(socket: Socket, data: Data, ack: AckSender) {
    let _ = socket.ns().emit("broadcast", data);
    let _ = ack.send(true);
}

async fn run(port: u16) -> std::io::Result<()> {
    let io = SocketIo::new();
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on("echo", echo);
        socket.on("broadcast", broadcast);
    });
    let listener = socketlet::bind(([127, 0, 0, 1], port).into())?;
    println!("LISTENING {}", listener.local_addr()?.port());
    socketlet::serve(listener, io.service(), std::future::pending()).await
}

fn main() -> std::io::Result<()> {
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
    runtime.block_on(run(args.port))
}
