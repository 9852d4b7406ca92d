//! The socketioxide peer of socketlet's benchmark.
//!
//! Served as socketioxide's README shows it: an axum `Router` with socketioxide's layer, on a
//! multi-thread tokio runtime (`#[tokio::main]`) given `--workers N` worker threads (default 1).
//! `--setup hyper` serves it instead as socketioxide's hyper-echo example does (an accept loop
//! around hyper's HTTP/1 connections, the same runtime); `bench/run.sh` measures both in the echo
//! cell (they cost the same within the noise) and uses axum, the README's, everywhere else. `--current-thread` runs either on a
//! current-thread runtime (how this peer was served before). With `--redis URL` it joins a
//! cluster through socketioxide-redis (its README's setup: the redis-rs driver, RESP3).
//!
//! Event contract (identical on every server):
//! - namespace `/` only;
//! - `echo`: acks its argument back (socketioxide's `Data` extractor reads the first argument;
//!   the load generator always sends exactly one);
//! - `broadcast` (with an ack): emits `broadcast` with the given argument to every socket of `/`
//!   (the sender included), then acks `true`;
//! - `join` (with an ack): the socket joins the room `bench`, then acks `true`;
//! - `broadcast_room` (with an ack): emits `broadcast` with the argument to the room `bench`,
//!   then acks `true`.
//!
//! Usage: `socketioxide-bench-server --port PORT [--workers N] [--setup axum|hyper]
//! [--current-thread] [--redis URL]` (prints `LISTENING PORT` once it accepts).

use axum::serve::ListenerExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;
use socketioxide_redis::drivers::redis::redis_client as redis;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};
use std::net::SocketAddr;

const ROOM: &str = "bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Axum,
    Hyper,
}

struct Args {
    port: u16,
    workers: usize,
    setup: Setup,
    current_thread: bool,
    redis: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        port: 0,
        workers: 1,
        setup: Setup::Axum,
        current_thread: false,
        redis: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                out.port = v.parse().map_err(|e| format!("bad --port {v}: {e}"))?;
            }
            "--workers" => {
                let v = value("--workers")?;
                out.workers = v.parse().map_err(|e| format!("bad --workers {v}: {e}"))?;
            }
            "--setup" => {
                out.setup = match value("--setup")?.as_str() {
                    "axum" => Setup::Axum,
                    "hyper" => Setup::Hyper,
                    other => return Err(format!("bad --setup {other} (axum or hyper)")),
                }
            }
            "--current-thread" => out.current_thread = true,
            "--redis" => out.redis = Some(value("--redis")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

async fn on_connect<A: Adapter>(socket: SocketRef<A>, io: SocketIo<A>) {
    socket.on(
        "echo",
        async |Data(data): Data<Value>, ack: AckSender<A>| {
            let _ = ack.send(&data);
        },
    );
    let all = io.clone();
    socket.on(
        "broadcast",
        async move |Data(data): Data<Value>, ack: AckSender<A>| {
            let _ = all.emit("broadcast", &data).await;
            let _ = ack.send(&true);
        },
    );
    socket.on("join", async |socket: SocketRef<A>, ack: AckSender<A>| {
        socket.join(ROOM);
        let _ = ack.send(&true);
    });
    socket.on(
        "broadcast_room",
        async move |Data(data): Data<Value>, ack: AckSender<A>| {
            let _ = io.to(ROOM).emit("broadcast", &data).await;
            let _ = ack.send(&true);
        },
    );
}

async fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(4096)
}

/// Serves `/` as socketioxide's hyper-echo example does: an accept loop, each connection
/// served by hyper's HTTP/1 with upgrades.
async fn serve_hyper(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let (svc, io) = SocketIo::new_svc();
    io.ns("/", on_connect);
    println!("LISTENING {}", listener.local_addr()?.port());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// The listener with `TCP_NODELAY` on every accepted connection, as axum's `ListenerExt::tap_io`
/// documents it (every server of the benchmark sets it).
fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = listen(args.port).await?;
    let port = listener.local_addr()?.port();
    match &args.redis {
        None if args.setup == Setup::Hyper => serve_hyper(listener).await?,
        None => {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", on_connect);
            println!("LISTENING {port}");
            axum::serve(nodelay(listener), axum::Router::new().layer(layer)).await?;
        }
        Some(url) => {
            let client = redis::Client::open(url.as_str())?;
            let adapter = RedisAdapterCtr::new_with_redis(&client).await?;
            let (layer, io) = SocketIo::builder()
                .with_adapter::<RedisAdapter<_>>(adapter)
                .build_layer();
            io.ns("/", on_connect).await?;
            println!("LISTENING {port}");
            axum::serve(nodelay(listener), axum::Router::new().layer(layer)).await?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers.max(1))
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(args))
}
