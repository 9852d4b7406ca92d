//! `serve`'s own HTTP/1.1 connection, spoken to byte by byte over real TCP: keep-alive and
//! pipelining, both body framings in both directions, `Expect: 100-continue`, `HEAD`, HTTP/1.0,
//! the refusals, and a client that goes away while its request is being answered.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use socketlet_engine::{serve, RemoteAddr, RequestBody};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What the test service saw.
#[derive(Default)]
struct Seen {
    /// Set when a parked request's answer was dropped.
    parked_dropped: AtomicBool,
    calls: AtomicUsize,
    /// What a task reading a body after its request was answered made of it: the bytes it
    /// read, or the error that ended it.
    late_reader: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<Result<usize, String>>>>,
}

/// A body that says it is `said` bytes long and is longer.
struct Liar {
    said: u64,
    sent: bool,
}

impl http_body::Body for Liar {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let first = !std::mem::replace(&mut self.sent, true);
        std::task::Poll::Ready(first.then(|| {
            Ok(http_body::Frame::data(Bytes::from_static(
                b"longer than said",
            )))
        }))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.said)
    }
}

struct DropFlag(Arc<Seen>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.parked_dropped.store(true, Ordering::SeqCst);
    }
}

fn whole(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()).boxed_unsync());
    *res.status_mut() = status;
    res
}

/// `/echo` answers with the body it read, `/ignore` without reading it, `/stream` with a body
/// of unknown length in three parts, `/park` never (until dropped), `/peer` with the peer.
async fn answer(seen: Arc<Seen>, req: Request<RequestBody>) -> Result<Response<Body>, Infallible> {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    Ok(match req.uri().path() {
        "/echo" => match req.into_body().collect().await {
            Ok(body) => whole(StatusCode::OK, body.to_bytes()),
            Err(e) => whole(StatusCode::BAD_REQUEST, e.to_string()),
        },
        "/ignore" => whole(StatusCode::OK, "ignored"),
        // Reads exactly the length the request gave, then lets the body go without asking
        // for its end.
        "/take" => {
            let len: usize = req.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let mut body = req.into_body();
            let mut took = 0;
            while took < len {
                let frame = body.frame().await.unwrap().unwrap();
                took += frame.into_data().unwrap().len();
            }
            drop(body);
            whole(StatusCode::OK, format!("took {took}"))
        }
        // Answers at once; a task goes on reading the body.
        "/late" => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            *seen.late_reader.lock().await = Some(rx);
            let body = req.into_body();
            tokio::spawn(async move {
                let read = body.collect().await.map(|b| b.to_bytes().len());
                let _ = tx.send(read.map_err(|e| e.to_string()));
            });
            whole(StatusCode::ACCEPTED, "later")
        }
        "/liar" => Response::new(
            Liar {
                said: 3,
                sent: false,
            }
            .boxed_unsync(),
        ),
        "/stream" => {
            let parts: Vec<_> = ["one,", "two,", "three"]
                .into_iter()
                .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
                .collect();
            Response::new(StreamBody::new(stream::iter(parts)).boxed_unsync())
        }
        "/park" => {
            let _flag = DropFlag(seen.clone());
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/peer" => {
            let peer = req.extensions().get::<RemoteAddr>().unwrap().0;
            whole(StatusCode::OK, peer.ip().to_string())
        }
        _ => whole(StatusCode::NOT_FOUND, "no"),
    })
}

async fn server() -> (SocketAddr, Arc<Seen>) {
    let listener = socketlet_engine::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let svc_seen = seen.clone();
    let svc = tower::service_fn(move |req| answer(svc_seen.clone(), req));
    tokio::spawn(serve(listener, svc, std::future::pending()));
    (addr, seen)
}

/// An answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads until `buf` holds `n` bytes (or the connection ends).
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        let mut chunk = [0u8; 4096];
        let got = stream.read(&mut chunk).await.unwrap();
        if got == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Reads one answer from `stream`; `buf` carries bytes read past it to the next call.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Answer {
    let read = async {
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let before = buf.len();
            fill(stream, buf, before + 1).await;
            assert!(buf.len() > before, "the connection ended mid-head: {buf:?}");
        };
        let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
        let status = head[9..12].parse().unwrap();
        let mut answer = Answer {
            status,
            head,
            body: Vec::new(),
        };
        if head_only || status == 100 || status == 204 {
            return answer;
        }
        if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().unwrap();
            fill(stream, buf, len).await;
            answer.body = buf.drain(..len).collect();
        } else if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    let before = buf.len();
                    fill(stream, buf, before + 1).await;
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16)
                        .unwrap();
                buf.drain(..line_end + 2);
                fill(stream, buf, size + 2).await;
                answer.body.extend(buf.drain(..size));
                assert_eq!(buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
                if size == 0 {
                    break;
                }
            }
        } else {
            fill(stream, buf, usize::MAX).await;
            answer.body = std::mem::take(buf);
        }
        answer
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s")
}

/// Whether the server closed the connection (within a second).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Connects, writes `request`, and reads one answer; the connection and the bytes read past
/// the answer are returned for more.
async fn ask(addr: SocketAddr, request: &[u8]) -> (TcpStream, Vec<u8>, Answer) {
    let mut s = connect(addr).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let answer = read_answer(&mut s, &mut buf, false).await;
    (s, buf, answer)
}

/// Asserts that `request` is answered `status`, with `says` in the body, and the connection
/// closed after.
async fn assert_refused(addr: SocketAddr, request: &[u8], status: u16, says: &str) {
    let (mut s, _, a) = ask(addr, request).await;
    assert_eq!(a.status, status, "{a:?}");
    assert!(String::from_utf8_lossy(&a.body).contains(says), "{a:?}");
    assert!(closed(&mut s).await, "the connection stayed open");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (addr, seen) = server().await;
    let (mut s, mut buf, a) = ask(
        addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nfirst\
          GET /peer HTTP/1.1\r\nhost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nthird!",
    )
    .await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"first"[..]));
    assert!(a.header("date").is_some(), "{}", a.head);
    let b = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((b.status, b.body.as_slice()), (200, &b"127.0.0.1"[..]));
    let c = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((c.status, c.body.as_slice()), (200, &b"third!"[..]));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    // Still open for a fourth.
    s.write_all(b"GET /ignore HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let d = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(d.body, b"ignored");
}

#[tokio::test]
async fn chunked_and_long_bodies_are_read_whole_in_pieces() {
    let (addr, _) = server().await;
    let mut s = connect(addr).await;
    // Chunked, with an extension and a trailer, sent in small pieces.
    let request: &[&[u8]] = &[
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        b"5;ext=1\r\nhel",
        b"lo\r\n",
        b"7\r\n, world\r\n0\r\nx-trailer: y\r\n\r\n",
    ];
    for piece in request {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"hello, world"[..]));

    // 100 KiB with a Content-Length: more than is read before the service runs.
    let body: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let b = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(b.status, 200);
    assert!(b.body == body, "the long body came back changed");
    assert_eq!(b.header("connection"), None, "{}", b.head);
}

#[tokio::test]
async fn a_long_body_the_service_does_not_read_closes_the_connection_after_the_answer() {
    let (addr, _) = server().await;
    let mut s = connect(addr).await;
    let head = "POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[b'a'; 20_000]).await.unwrap();
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ignored"[..]));
    assert_eq!(a.header("connection"), Some("close"));
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_body_of_unknown_length_goes_out_chunked_or_until_close() {
    let (addr, _) = server().await;
    let (_, _, a) = ask(addr, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(a.header("transfer-encoding"), Some("chunked"));
    assert_eq!(a.body, b"one,two,three");

    // HTTP/1.0 has no chunked: the body ends with the connection.
    let (_, _, b) = ask(
        addr,
        b"GET /stream HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
    )
    .await;
    assert_eq!(b.header("transfer-encoding"), None);
    assert_eq!(b.header("connection"), Some("close"));
    assert_eq!(b.body, b"one,two,three");
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive_and_head_has_no_body() {
    let (addr, _) = server().await;
    let (mut s, mut buf, a) = ask(addr, b"GET /ignore HTTP/1.0\r\n\r\n").await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ignored"[..]));
    assert!(closed(&mut s).await);

    let mut s = connect(addr).await;
    s.write_all(b"GET /ignore HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(a.header("connection"), Some("keep-alive"));
    s.write_all(
        b"HEAD /ignore HTTP/1.1\r\nhost: x\r\n\r\n\
          GET /ignore HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_answer(&mut s, &mut buf, true).await;
    assert_eq!(head.header("content-length"), Some("7"));
    let get = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(get.body, b"ignored", "the HEAD answer carried a body");
    assert_eq!(get.header("connection"), Some("close"));
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (addr, _) = server().await;
    let (mut s, mut buf, go) = ask(
        addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
    )
    .await;
    assert_eq!(go.status, 100);
    s.write_all(b"body").await.unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"body"[..]));
}

#[tokio::test]
async fn bad_heads_are_refused_with_a_status_and_the_connection_closed() {
    let (addr, seen) = server().await;
    let long = format!(
        "GET /echo HTTP/1.1\r\nx-long: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let many: String = (0..101).map(|i| format!("x-{i}: y\r\n")).collect();
    let many = format!("GET /echo HTTP/1.1\r\n{many}\r\n");
    let cases: Vec<(String, u16)> = vec![
        ("NOT HTTP AT ALL\r\n\r\n".into(), 400),
        (long, 431),
        (many, 431),
        (
            "POST /echo HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n".into(),
            501,
        ),
        (
            "POST /echo HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello".into(),
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\ncontent-length: -1\r\n\r\n".into(),
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            400,
        ),
    ];
    for (request, status) in cases {
        let mut s = connect(addr).await;
        // The server may close before it read everything: a failed write is part of the answer.
        let _ = s.write_all(request.as_bytes()).await;
        let mut buf = Vec::new();
        let a = read_answer(&mut s, &mut buf, false).await;
        assert_eq!(a.status, status, "{}", &request[..request.len().min(60)]);
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed(&mut s).await);
    }
    assert_eq!(
        seen.calls.load(Ordering::SeqCst),
        0,
        "a refused request reached the service"
    );

    // A bad chunk size reaches the service as a body error, and ends the connection.
    let request = b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    assert_refused(addr, request, 400, "chunk size").await;
}

#[tokio::test]
async fn a_client_gone_while_its_request_is_parked_drops_the_answer() {
    let (addr, seen) = server().await;
    let mut s = connect(addr).await;
    s.write_all(b"GET /park HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!seen.parked_dropped.load(Ordering::SeqCst));
    drop(s);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.parked_dropped.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the parked answer was kept"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_head_that_does_not_come_ends_the_connection() {
    let seen = Arc::new(Seen::default());
    let svc = tower::service_fn(move |req| answer(seen.clone(), req));
    let (mut client, server_end) = tokio::io::duplex(4096);
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    tokio::spawn(socketlet_engine::serve_connection(server_end, peer, svc));
    client
        .write_all(b"GET /ignore HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    // Half a head, then nothing: the connection ends when the head's time is up, not before.
    client.write_all(b"GET /ignore HTTP/1.1\r\n").await.unwrap();
    let mut rest = Vec::new();
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut rest))
        .await
        .expect("the connection ended")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= socketlet_engine::HEAD_TIMEOUT - Duration::from_secs(1)
            && waited <= socketlet_engine::HEAD_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_streamed_body_gets_100_continue_only_when_the_service_reads_it() {
    let (addr, _) = server().await;
    let long = 40 * 1024;
    // Read: the 100 comes, then the body, then the echo.
    let mut s = connect(addr).await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {long}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.status, 100);
    s.write_all(&vec![b'x'; long]).await.unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.body.len()), (200, long));

    // Not read: no 100, the answer, and the connection closes (the body never came).
    let mut s = connect(addr).await;
    let head = head.replace("/echo", "/ignore");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ignored"[..]));
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_body_read_to_its_length_and_let_go_keeps_the_connection() {
    let (addr, _) = server().await;
    let mut s = connect(addr).await;
    let long = 50 * 1024;
    let head = format!("POST /take HTTP/1.1\r\nhost: x\r\ncontent-length: {long}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'y'; long]).await.unwrap();
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(a.body, format!("took {long}").as_bytes());
    assert_eq!(a.header("connection"), None, "{}", a.head);
    s.write_all(b"GET /ignore HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.body, b"ignored");
}

#[tokio::test]
async fn a_body_still_read_after_the_answer_ends_in_an_error_not_early() {
    let (addr, seen) = server().await;
    let mut s = connect(addr).await;
    let head = "POST /late HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[b'z'; 20_000]).await.unwrap();
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(a.status, 202);
    let rx = seen.late_reader.lock().await.take().unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the late reader was left waiting")
        .unwrap();
    assert!(read.is_err(), "a body cut short read as whole: {read:?}");
}

#[tokio::test]
async fn chunked_lines_must_end_in_crlf() {
    let (addr, _) = server().await;
    let request = b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\nhello\n0\n\n";
    assert_refused(addr, request, 400, "without CR").await;
}

#[tokio::test]
async fn a_body_longer_than_its_length_ends_the_connection() {
    let (addr, _) = server().await;
    let (mut s, _, a) = ask(addr, b"GET /liar HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(a.header("content-length"), Some("3"));
    assert!(a.body.len() <= 3);
    assert!(
        closed(&mut s).await,
        "the connection carried on after a body past its length"
    );
}

#[tokio::test]
async fn a_short_body_still_coming_does_not_hold_its_request_back() {
    // The service sees the request while its body comes, and bounds the wait itself (the
    // engine answers a slow POST 408 at its `max_body_time`).
    let (addr, _) = server().await;
    let (_, _, a) = ask(
        addr,
        b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhalf!",
    )
    .await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ignored"[..]));
    assert_eq!(a.header("connection"), Some("close"), "{}", a.head);
}
