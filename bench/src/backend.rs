//! `hook-backend`: a minimal, fast backend for the `socketlet` binary's event hook
//! (`--hook-event`), so that the benchmark can measure what a hook round trip adds to an event.
//!
//! Every POST, whatever its path, is answered `{"result":{"ack":<args>}}` with the `args` of
//! the hook's request: an event with an ack gets its arguments back, as the `echo` of the
//! benchmark's servers does. One thread (a current-thread runtime), HTTP/1.1 keep-alive
//! (hyper), on 127.0.0.1; it prints `LISTENING <port>` once it accepts connections and runs
//! until it is killed.

use crate::BoxError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BackendArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// The answer to one hook request.
fn answer(body: &[u8]) -> Bytes {
    let args = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("args").map(Value::take))
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let answer = serde_json::json!({ "result": { "ack": args } });
    Bytes::from(serde_json::to_vec(&answer).unwrap_or_default())
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut res = Response::new(Full::new(answer(&body)));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

async fn serve(port: u16) -> Result<(), BoxError> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(1024)?;
    println!("LISTENING {}", listener.local_addr()?.port());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                .await;
        });
    }
}

/// Runs the backend until the process is killed.
pub(crate) fn run(args: &BackendArgs) -> Result<(), BoxError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(args.port))
}

#[cfg(test)]
mod tests {
    use super::answer;

    #[test]
    fn the_ack_is_the_events_arguments() {
        let body = br#"{"sid":"a","nsp":"/","event":"echo","args":["x",1]}"#;
        assert_eq!(&answer(body)[..], br#"{"result":{"ack":["x",1]}}"#);
        assert_eq!(&answer(b"nope")[..], br#"{"result":{"ack":[]}}"#);
    }
}
