//! `serve`'s HTTP/1.1 connection (`socketlet_engine::serve_connection`), fed what a client
//! writes on its side: request heads, bodies in both framings, pipelining, garbage.
//!
//! Each run serves a small service over an in-memory pipe on a current-thread tokio runtime
//! with a paused clock (the connection's 30 s head timeout costs no real time). The service
//! answers `/echo` with the length of the body it read (within 10 s of virtual time, as the
//! engine bounds its own reads), `/drop` at once without reading the body, and anything else
//! with a fixed text.
//!
//! Input: the first byte chooses the setting (bits 0-1: the write size, all at once or 1, 7 or
//! 100 bytes at a time; bit 2: the client then shuts its side, else it stays open and goes
//! quiet). The rest is the byte stream.
//!
//! Beyond "no panic" (the connection's task is joined and must not have panicked):
//! - the connection ends: the server closes it within two minutes of virtual time of the last
//!   byte, whatever was left half-sent;
//! - what the server writes is bounded by what it read (no answer is amplified past a fixed
//!   size per request, and a request takes at least 16 bytes);
//! - what the server writes is a sequence of HTTP/1.1 answers: each starts with a status line
//!   `HTTP/1.1 NNN`, and a `content-length` answer carries exactly that many bytes.

#![no_main]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use socketlet_engine::{serve_connection, RequestBody};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long, in virtual time, the connection may take to end once the client wrote everything.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Clone)]
struct Svc;

impl tower_service::Service<Request<RequestBody>> for Svc {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        Box::pin(async move {
            let text = match req.uri().path() {
                "/echo" => {
                    let read = tokio::time::timeout(
                        Duration::from_secs(10),
                        req.into_body().collect(),
                    );
                    match read.await {
                        Ok(Ok(body)) => format!("read {}", body.to_bytes().len()),
                        Ok(Err(e)) => format!("broken: {e}"),
                        Err(_) => "too slow".to_owned(),
                    }
                }
                "/drop" => "dropped".to_owned(),
                _ => "ok".to_owned(),
            };
            Ok(Response::new(Full::new(Bytes::from(text))))
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = [usize::MAX, 1, 7, 100][usize::from(first & 3)];
    let shutdown = first & 4 != 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(run(stream, chunk, shutdown));
});

async fn run(stream: &[u8], chunk: usize, shutdown: bool) {
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let server = tokio::spawn(serve_connection(server_end, peer, Svc));

    let (mut rd, mut wr) = tokio::io::split(&mut client);
    let reader = async {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    };
    let writer = async {
        for piece in stream.chunks(chunk.min(stream.len().max(1))) {
            if wr.write_all(piece).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if shutdown {
            let _ = wr.shutdown().await;
        }
    };
    let ((), out) = tokio::join!(writer, async {
        tokio::time::timeout(PATIENCE, reader)
            .await
            .expect("the connection did not end within two minutes of the last byte")
    });
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("the connection's task failed: {e}"),
        Err(_) => panic!("the connection's task outlived its connection"),
    }

    let requests = stream.len() / 16 + 2;
    assert!(
        out.len() <= requests * 512,
        "{} bytes written for {} read",
        out.len(),
        stream.len()
    );
    check_answers(&out);
}

/// Each answer: a status line, headers, and the body its `content-length` gives (the service
/// only answers with known lengths; a refusal has `content-length: 0`).
fn check_answers(mut out: &[u8]) {
    while !out.is_empty() {
        assert!(out.starts_with(b"HTTP/1.1 "), "not a status line: {:?}", head(out));
        let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
            panic!("an answer's head cut short: {:?}", head(out));
        };
        let text = std::str::from_utf8(&out[..end]).expect("a head in ASCII");
        let status: u16 = text[9..12].parse().expect("a status code");
        let length = text
            .lines()
            .skip(1)
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.parse::<usize>().expect("a length"));
        out = &out[end + 4..];
        if status == 100 {
            continue;
        }
        let length = length.expect("every answer here has a content-length");
        assert!(out.len() >= length, "a body cut short");
        out = &out[length..];
    }
}

fn head(out: &[u8]) -> String {
    String::from_utf8_lossy(&out[..out.len().min(80)]).into_owned()
}
