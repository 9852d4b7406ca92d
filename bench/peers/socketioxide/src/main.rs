//! The socketioxide peer of socketlet's benchmark, on one tokio worker thread (current_thread).
//!
//! Event contract (identical on every server):
//! - namespace `/` only;
//! - `echo`: acks its argument back (socketioxide's `Data` extractor reads the first argument;
//!   the load generator always sends exactly one);
//! - `broadcast` (with an ack): emits `broadcast` with the given argument to every socket of `/`
//!   (the sender included), then acks `true`.
//!
//! Usage: `socketioxide-bench-server --port PORT` (prints `LISTENING PORT` once it accepts).

use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;
use std::net::SocketAddr;

fn parse_port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|e| format!("bad --port {value}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(port)
}

async fn on_connect(socket: SocketRef, io: SocketIo) {
    socket.on("echo", async |Data(data): Data<Value>, ack: AckSender| {
        let _ = ack.send(&data);
    });
    socket.on(
        "broadcast",
        async move |Data(data): Data<Value>, ack: AckSender| {
            let _ = io.emit("broadcast", &data).await;
            let _ = ack.send(&true);
        },
    );
}

async fn serve(port: u16) -> std::io::Result<()> {
    let (svc, io) = SocketIo::new_svc();
    io.ns("/", on_connect);

    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(4096)?;
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

fn main() -> std::io::Result<()> {
    let port = parse_port().map_err(std::io::Error::other)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(port))
}
