//! What a hostile client cannot do to the engine: hold memory with slow or endless POST bodies,
//! grow a session's queue with pings it never reads, read a session through JSONP, pass the
//! origin check with forwarded headers of its own, or reach a loopback server under another
//! name. Each test failed before the fix it covers.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::header::{HeaderName, HeaderValue};
use socketlet_engine::{AllowedHosts, RemoteAddr, TrustedProxies};
use std::convert::Infallible;
use std::net::SocketAddr;

/// A body whose chunks come from a channel: as slow, as endless or as short as the test makes
/// it; it ends when the sender is dropped.
struct Streamed(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

fn streamed_body() -> (tokio::sync::mpsc::Sender<Bytes>, Streamed) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    (tx, Streamed(rx))
}

/// A POST to `session` whose body is streamed; the caller sends the chunks.
fn slow_post(
    svc: &EngineService,
    session: &Polling,
    declared: Option<usize>,
) -> (tokio::sync::mpsc::Sender<Bytes>, JoinHandle<Reply>) {
    let (tx, body) = streamed_body();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/engine.io/?{}", session.query()));
    if let Some(n) = declared {
        req = req.header("content-length", n);
    }
    let req = req.body(body).unwrap();
    let svc = svc.clone();
    (tx, tokio::spawn(async move { send(&svc, req).await }))
}

/// The suite's configuration with pings a minute apart: no session times out during a test.
fn unhurried() -> EngineConfig {
    suite_config().with_ping_interval(Duration::from_secs(60))
}

/// A server whose POST bodies must arrive within 5 s, and a v4 polling session on it.
async fn five_second_bodies() -> (EngineService, Polling) {
    let svc = server_with(unhurried().with_max_body_time(Duration::from_secs(5)));
    let session = Polling::start(&svc, Eio::V4).await;
    (svc, session)
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_coming_is_cut_off_at_its_deadline() {
    let (svc, session) = five_second_bodies().await;
    let (tx, post) = slow_post(&svc, &session, Some(100_000));
    tx.send(Bytes::from(vec![b'4'; 1000])).await.unwrap();
    let started = Instant::now();
    let res = within("the slow POST", post).await.unwrap();
    assert_eq!(res.status, StatusCode::REQUEST_TIMEOUT, "{:?}", res.text());
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(6));
    // The session is over.
    session.get().await.assert_error(1);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_endless_body_is_cut_off_at_max_payload_or_its_deadline() {
    let (svc, session) = five_second_bodies().await;
    // Chunked (no length), 10 KB a second: the payload limit is far, the deadline ends it.
    let (tx, post) = slow_post(&svc, &session, None);
    let feeder = tokio::spawn(async move {
        while tx.send(Bytes::from(vec![b'4'; 10_000])).await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let res = within("the endless POST", post).await.unwrap();
    assert_eq!(res.status, StatusCode::REQUEST_TIMEOUT);
    feeder.abort();

    // Fast and endless: cut off at max_payload.
    let session = Polling::start(&svc, Eio::V4).await;
    let (tx, post) = slow_post(&svc, &session, None);
    let feeder =
        tokio::spawn(
            async move { while tx.send(Bytes::from(vec![b'4'; 100_000])).await.is_ok() {} },
        );
    let res = within("the endless POST", post).await.unwrap();
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    feeder.abort();
}

#[tokio::test(start_paused = true)]
async fn a_body_is_abandoned_when_its_session_times_out() {
    // The body may take 10 minutes; the session times out after 300 + 200 ms without a pong.
    let config = suite_config().with_max_body_time(Duration::from_secs(600));
    let svc = server_with(config);
    let session = Polling::start(&svc, Eio::V4).await;
    let (tx, post) = slow_post(&svc, &session, Some(2_000));
    tx.send(Bytes::from(vec![b'4'; 1000])).await.unwrap();
    let started = Instant::now();
    let res = within("the POST of a dead session", post).await.unwrap();
    res.assert_error(1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Completing it now changes nothing (the request is already answered).
    let _ = tx.send(Bytes::from(vec![b'4'; 1000])).await;
}

#[tokio::test(start_paused = true)]
async fn bodies_in_flight_share_a_memory_budget() {
    let svc = server_with(unhurried().with_max_body_memory(250_000));
    // Two sessions hold 100 KB each of unfinished bodies.
    let mut held = Vec::new();
    for _ in 0..2 {
        let session = Polling::start(&svc, Eio::V4).await;
        let (tx, post) = slow_post(&svc, &session, Some(500_000));
        tx.send(Bytes::from(vec![b'4'; 100_000])).await.unwrap();
        held.push((session, tx, post));
    }
    settle().await;
    // A third may not take 100 KB more.
    let third = Polling::start(&svc, Eio::V4).await;
    let (tx, post) = slow_post(&svc, &third, Some(500_000));
    tx.send(Bytes::from(vec![b'4'; 100_000])).await.unwrap();
    let res = within("the POST over budget", post).await.unwrap();
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    // The budget comes back when bodies end: with the first two gone, a new one fits.
    for (_, tx, post) in held {
        drop(tx);
        let _ = within("a held POST", post).await;
    }
    let fourth = Polling::start(&svc, Eio::V4).await;
    let (tx, post) = slow_post(&svc, &fourth, None);
    tx.send(Bytes::from(vec![b'4'; 200_000])).await.unwrap();
    drop(tx);
    within("a POST within budget", post)
        .await
        .unwrap()
        .assert_ok("ok");
}

#[tokio::test(start_paused = true)]
async fn a_v4_client_ping_breaks_the_protocol() {
    let svc = server();
    let session = Polling::start(&svc, Eio::V4).await;
    // Node: "invalid heartbeat direction". The POST itself is taken; the session is over.
    session.post("2").await;
    session.get().await.assert_error(1);

    let mut ws = ws_open(&svc, Eio::V4).await;
    ws_send(&mut ws, Frame::text("2")).await;
    ws_expect_end(&mut ws, &["1"]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_pongs_carry_no_data_and_a_ping_flood_is_bounded() {
    let svc = server_with(unhurried().with_max_buffered_packets(100));
    let session = Polling::start(&svc, Eio::V3).await;
    // A big ping is answered with a plain pong.
    let big = format!("2{}", "x".repeat(100_000));
    session.send(&[&big]).await;
    session.expect(&["3"]).await;
    // Pings that are never read: the queue fills and the session closes, however many come.
    let pings: Vec<&str> = vec!["2"; 90];
    session.send(&pings).await;
    session.post(&Eio::V3.payload(&pings)).await;
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn jsonp_is_refused_unless_enabled() {
    let handshake = |svc| async move {
        call(
            &svc,
            Method::GET,
            "EIO=3&transport=polling&j=0",
            Bytes::new(),
        )
        .await
    };
    let res = handshake(server()).await;
    res.assert_error(3);
    assert!(res.text().contains("JSONP"), "{}", res.text());

    let res = handshake(server_with(suite_config().with_allow_jsonp(true))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text().starts_with("___eio[0](\""), "{}", res.text());
}

/// A handshake with these headers, from `peer`.
async fn handshake_from(
    svc: &EngineService,
    peer: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Reply {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("/engine.io/?EIO=4&transport=polling")
        .body(Full::new(Bytes::new()))
        .unwrap();
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(RemoteAddr(addr));
    }
    send(svc, req).await
}

#[tokio::test(start_paused = true)]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let svc = server_with(suite_config().with_cors(socketlet_engine::Cors::SameOrigin));
    let forged = [
        ("host", "127.0.0.1:3000"),
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-proto", "http"),
        ("origin", "http://evil.test"),
    ];
    // From a client on the network: its forwarded headers are its own invention.
    let res = handshake_from(&svc, Some("203.0.113.7:5000"), &forged).await;
    res.assert_error(3);
    // Served without the peer's address (an application's own server): not trusted either.
    handshake_from(&svc, None, &forged).await.assert_error(3);
    // From the proxy on the same host (loopback, trusted by default): believed.
    let res = handshake_from(&svc, Some("127.0.0.1:5000"), &forged).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Trusting no one.
    let strict = server_with(
        suite_config()
            .with_cors(socketlet_engine::Cors::SameOrigin)
            .with_trusted_proxies(TrustedProxies::none()),
    );
    handshake_from(&strict, Some("127.0.0.1:5000"), &forged)
        .await
        .assert_error(3);
}

#[tokio::test(start_paused = true)]
async fn a_loopback_server_answers_only_its_own_names() {
    let svc = server_with(suite_config().with_allowed_hosts(AllowedHosts::loopback()));
    for host in ["localhost:3000", "127.0.0.1:3000", "[::1]:3000"] {
        let res = handshake_from(&svc, Some("127.0.0.1:5000"), &[("host", host)]).await;
        assert_eq!(res.status, StatusCode::OK, "{host}: {}", res.text());
    }
    // DNS rebinding: a page of evil.test whose name now resolves to 127.0.0.1. Same-origin
    // requests of that page carry no Origin at all; its Host gives it away.
    let res = handshake_from(&svc, Some("127.0.0.1:5000"), &[("host", "evil.test:3000")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    let res = handshake_from(
        &svc,
        Some("127.0.0.1:5000"),
        &[
            ("host", "evil.test:3000"),
            ("origin", "http://evil.test:3000"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

#[tokio::test(start_paused = true)]
async fn max_payload_bounds_messages_not_control_frames() {
    // As Node's `ws` does: a ping of up to 125 bytes is answered whatever `maxPayload` is;
    // a message over it ends the connection.
    let svc = server_with(suite_config().with_max_payload(64));
    let mut ws = ws_connect(&svc, "EIO=4&transport=websocket")
        .await
        .expect("handshake");
    assert!(ws_recv_text(&mut ws).await.starts_with("0{"));
    let ping = vec![7u8; 100];
    ws.send(Frame::Ping(ping.clone().into())).await.unwrap();
    loop {
        match ws_next(&mut ws).await {
            Some(Ok(Frame::Pong(p))) => break assert_eq!(p.as_ref(), &ping[..]),
            Some(Ok(Frame::Text(t))) if t.as_str() == "2" => {}
            other => panic!("expected the pong, got {other:?}"),
        }
    }
    ws.send(Frame::text(format!("4{}", "x".repeat(63))))
        .await
        .unwrap();
    // (Heartbeat PINGs may come first.)
    let mut echo = ws_recv_text(&mut ws).await;
    while echo == "2" {
        ws.send(Frame::text("3")).await.unwrap();
        echo = ws_recv_text(&mut ws).await;
    }
    assert_eq!(echo, format!("4{}", "x".repeat(63)));
    ws.send(Frame::text(format!("4{}", "x".repeat(64))))
        .await
        .unwrap();
    loop {
        match ws_next(&mut ws).await {
            None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => break,
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
            Some(Ok(Frame::Text(t))) if t.as_str() == "2" => {}
            Some(Ok(other)) => panic!("the message over maxPayload was taken: {other:?}"),
        }
    }
}
