//! The engine alone as a raw Engine.IO echo server, held to every behaviour that the official
//! Engine.IO v3 and v4 protocol test suites check (handshake, messages, heartbeat, close,
//! upgrade), with the settings those suites expect (the same as
//! `examples/engineio_conformance.rs`).
//!
//! Nothing here touches the network: polling requests go straight through
//! [`EngineService`] with `tower::ServiceExt::oneshot`, and WebSockets run over an in-memory
//! pipe served by hyper. The clock is tokio's paused one, so heartbeats and timeouts cost no
//! real time, and every wait goes through [`within`] so that a server that never answers fails
//! the test instead of hanging it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

// ----------------------------------------------------------------------------------------------
// Handshake
// ----------------------------------------------------------------------------------------------

/// A GET without sid opens a session; its answer is the OPEN packet alone, with the settings.
async fn polling_handshake(eio: Eio) {
    let svc = server();
    // `open_with` checks the OPEN packet: fields, values, and v3's `<length>:` framing.
    let session = Polling::open_with(&svc, eio, "").await;
    assert!(!session.sid.is_empty());
}

#[tokio::test(start_paused = true)]
async fn v4_polling_handshake_opens_a_session() {
    polling_handshake(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_handshake_opens_a_session() {
    polling_handshake(Eio::V3).await;
}

#[tokio::test(start_paused = true)]
async fn polling_handshake_refuses_a_missing_or_unknown_eio() {
    let svc = server();
    for query in ["transport=polling", "EIO=abc&transport=polling"] {
        call(&svc, Method::GET, query, Bytes::new())
            .await
            .assert_error(5);
    }
}

/// A handshake without `transport`, or with an unknown one, is refused with code 0.
async fn polling_handshake_bad_transport(eio: Eio) {
    let svc = server();
    for rest in ["", "&transport=abc"] {
        let query = format!("{}{rest}", eio.param());
        call(&svc, Method::GET, &query, Bytes::new())
            .await
            .assert_error(0);
    }
}

#[tokio::test(start_paused = true)]
async fn v4_polling_handshake_refuses_a_missing_or_unknown_transport() {
    polling_handshake_bad_transport(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_handshake_refuses_a_missing_or_unknown_transport() {
    polling_handshake_bad_transport(Eio::V3).await;
}

/// A handshake must be a GET: POST or PUT without sid is refused with code 2.
async fn polling_handshake_bad_method(eio: Eio) {
    let svc = server();
    let query = format!("{}&transport=polling", eio.param());
    for method in [Method::POST, Method::PUT] {
        call(&svc, method, &query, Bytes::new())
            .await
            .assert_error(2);
    }
}

#[tokio::test(start_paused = true)]
async fn v4_polling_handshake_refuses_methods_other_than_get() {
    polling_handshake_bad_method(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_handshake_refuses_methods_other_than_get() {
    polling_handshake_bad_method(Eio::V3).await;
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_handshake_opens_a_session_without_upgrades() {
    // `ws_open` checks the first frame: OPEN with the settings and `upgrades: []`.
    let svc = server();
    ws_open(&svc, Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_handshake_opens_a_session_without_upgrades() {
    let svc = server();
    ws_open(&svc, Eio::V3).await;
}

#[tokio::test(start_paused = true)]
async fn websocket_handshake_refuses_a_missing_or_unknown_eio() {
    let svc = server();
    ws_refused(&svc, "transport=websocket").await;
    ws_refused(&svc, "EIO=abc&transport=websocket").await;
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_handshake_refuses_a_missing_or_unknown_transport() {
    let svc = server();
    ws_refused(&svc, "EIO=4").await;
    ws_refused(&svc, "EIO=4&transport=abc").await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_handshake_refuses_a_missing_or_unknown_transport() {
    let svc = server();
    ws_refused(&svc, "EIO=3").await;
    ws_refused(&svc, "EIO=3&transport=abc").await;
}

// ----------------------------------------------------------------------------------------------
// Messages over HTTP long-polling
// ----------------------------------------------------------------------------------------------

/// POSTed `packets` are acknowledged with `ok` and come back whole on the next GET.
async fn polling_echo(eio: Eio, packets: &[&str]) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    session.send(packets).await;
    session.expect(packets).await;
}

#[tokio::test(start_paused = true)]
async fn v4_polling_echoes_one_text_packet() {
    polling_echo(Eio::V4, &["4hello"]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_echoes_one_text_packet() {
    polling_echo(Eio::V3, &["4hello"]).await;
}

#[tokio::test(start_paused = true)]
async fn v4_polling_echoes_several_text_packets() {
    polling_echo(Eio::V4, &["4one", "4two", "4three"]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_echoes_several_text_packets() {
    polling_echo(Eio::V3, &["4one", "4two", "4three"]).await;
}

#[tokio::test(start_paused = true)]
async fn v4_polling_echoes_text_and_base64_binary() {
    // `b` + base64 of [5, 6, 7].
    polling_echo(Eio::V4, &["4hi", "bBQYH"]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_echoes_binary_as_base64_when_the_handshake_asked_b64() {
    let svc = server();
    // Opened with `b64=1`; neither the POST nor the GET repeats it: the choice is the session's.
    let session = Polling::open_with(&svc, Eio::V3, "&b64=1").await;
    // `b4` + base64 of [5, 6, 7].
    session.send(&["4hi", "b4BQYH"]).await;
    session.expect(&["4hi", "b4BQYH"]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_echoes_binary_as_xhr2_bytes_without_b64() {
    let svc = server();
    let session = Polling::open_with(&svc, Eio::V3, "").await;
    session.send(&["4hi", "b4BQYH"]).await;
    let res = session.get().await;
    assert_eq!(res.status, StatusCode::OK);
    // Each packet: 0 (text) or 1 (binary), its length as decimal digits, 255, then the packet.
    // A binary packet is its type as a byte (4) followed by the raw data.
    let expected: &[u8] = &[0, 3, 255, b'4', b'h', b'i', 1, 4, 255, 4, 5, 6, 7];
    assert_eq!(&res.body[..], expected);
}

/// A POST that is not a valid payload is refused with a 400 and ends the session.
async fn polling_invalid_packet(eio: Eio) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    let res = session.post("xyz").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.text());
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v4_polling_invalid_packet_closes_the_session() {
    polling_invalid_packet(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_invalid_packet_closes_the_session() {
    polling_invalid_packet(Eio::V3).await;
}

/// A second GET while one is parked ends the session: the parked one gets CLOSE, the second an
/// error, and the session is gone.
async fn polling_overlapping_get(eio: Eio) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    let parked = session.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the first GET waits for packets");
    let query = format!("{}&t=second", session.query());
    let second = call(&svc, Method::GET, &query, Bytes::new()).await;
    assert!(
        [400, 500].contains(&second.status.as_u16()),
        "overlapping GET: {second:?}"
    );
    within("the parked GET", parked)
        .await
        .unwrap()
        .assert_ok(&eio.payload(&["1"]));
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v4_polling_overlapping_get_closes_the_session() {
    polling_overlapping_get(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_overlapping_get_closes_the_session() {
    // The v3 suite has this test but skips it; the behaviour is v4's.
    polling_overlapping_get(Eio::V3).await;
}

/// A parked GET that the client gives up on ends the session.
async fn polling_cancelled_get(eio: Eio) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    let parked = session.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the GET waits for packets");
    parked.abort();
    assert!(within("the aborted GET", parked)
        .await
        .is_err_and(|e| e.is_cancelled()));
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v4_polling_cancelled_get_closes_the_session() {
    polling_cancelled_get(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_cancelled_get_closes_the_session() {
    // Only the v4 suite checks this; the engine treats both versions alike.
    polling_cancelled_get(Eio::V3).await;
}

// ----------------------------------------------------------------------------------------------
// Messages over WebSocket
// ----------------------------------------------------------------------------------------------

/// A text packet comes back as sent.
async fn websocket_text_echo(eio: Eio) {
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    ws_send(&mut ws, Frame::text("4hello there")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "4hello there");
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_echoes_text() {
    websocket_text_echo(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_echoes_text() {
    websocket_text_echo(Eio::V3).await;
}

/// A binary frame comes back as sent (v4: raw data; v3: the type byte 4, then the data).
async fn websocket_binary_echo(eio: Eio, frame: &'static [u8]) {
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    ws_send(&mut ws, Frame::binary(Bytes::from_static(frame))).await;
    match ws_next(&mut ws).await {
        Some(Ok(Frame::Binary(b))) => assert_eq!(&b[..], frame),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_echoes_binary() {
    websocket_binary_echo(Eio::V4, &[9, 8, 7, 6]).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_echoes_binary() {
    websocket_binary_echo(Eio::V3, &[4, 9, 8, 7, 6]).await;
}

/// A frame that is not a packet ends the connection.
async fn websocket_invalid_packet(eio: Eio) {
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    ws_send(&mut ws, Frame::text("xyz")).await;
    ws_expect_end(&mut ws, &[]).await;
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_invalid_packet_closes_the_session() {
    websocket_invalid_packet(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_invalid_packet_closes_the_session() {
    websocket_invalid_packet(Eio::V3).await;
}

// ----------------------------------------------------------------------------------------------
// Heartbeat
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn v4_polling_server_pings_and_accepts_pongs() {
    let svc = server();
    let session = Polling::open(&svc, Eio::V4).await;
    for _ in 0..3 {
        let asked = Instant::now();
        session.expect(&["2"]).await;
        assert!(asked.elapsed() >= PING_INTERVAL, "{:?}", asked.elapsed());
        session.send(&["3"]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn v3_polling_client_pings_and_gets_pongs() {
    let svc = server();
    let session = Polling::open(&svc, Eio::V3).await;
    for _ in 0..3 {
        session.send(&["2"]).await;
        session.expect(&["3"]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn v4_polling_ping_timeout_closes_the_session() {
    let svc = server();
    let session = Polling::open(&svc, Eio::V4).await;
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT).await;
    // Let the server's own timer, due at this very instant, run first.
    settle().await;
    // The PING queued at pingInterval went unanswered: the session is gone, not delivered.
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v3_polling_ping_timeout_closes_the_session() {
    let svc = server();
    let session = Polling::open(&svc, Eio::V3).await;
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT).await;
    settle().await;
    // The client's PING comes too late.
    session.post(&Eio::V3.payload(&["2"])).await.assert_error(1);
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_server_pings_and_accepts_pongs() {
    let svc = server();
    let mut ws = ws_open(&svc, Eio::V4).await;
    for _ in 0..3 {
        let asked = Instant::now();
        assert_eq!(ws_recv_text(&mut ws).await, "2");
        assert!(asked.elapsed() >= PING_INTERVAL, "{:?}", asked.elapsed());
        ws_send(&mut ws, Frame::text("3")).await;
    }
    // Still open: messages flow.
    ws_send(&mut ws, Frame::text("4alive")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "4alive");
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_client_pings_and_gets_pongs() {
    let svc = server();
    let mut ws = ws_open(&svc, Eio::V3).await;
    for _ in 0..3 {
        ws_send(&mut ws, Frame::text("2")).await;
        assert_eq!(ws_recv_text(&mut ws).await, "3");
    }
}

/// Without heartbeats from the client, the server closes the WebSocket after pingInterval +
/// pingTimeout (v4 sends its PING first).
async fn websocket_ping_timeout(eio: Eio) {
    let opened = Instant::now();
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    ws_expect_end(&mut ws, if eio == Eio::V4 { &["2"] } else { &[] }).await;
    assert!(
        opened.elapsed() >= PING_INTERVAL + PING_TIMEOUT,
        "{:?}",
        opened.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_ping_timeout_closes_the_connection() {
    websocket_ping_timeout(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_ping_timeout_closes_the_connection() {
    websocket_ping_timeout(Eio::V3).await;
}

// ----------------------------------------------------------------------------------------------
// Close
// ----------------------------------------------------------------------------------------------

/// A CLOSE POSTed while a GET is parked: the GET is released with NOOP and the session is gone.
async fn polling_close(eio: Eio) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    let parked = session.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the GET waits for packets");
    let _ = session.post(&eio.payload(&["1"])).await;
    within("the parked GET", parked)
        .await
        .unwrap()
        .assert_ok(&eio.payload(&["6"]));
    session.get().await.assert_error(1);
}

#[tokio::test(start_paused = true)]
async fn v4_polling_close_releases_the_parked_get_and_ends_the_session() {
    polling_close(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_polling_close_releases_the_parked_get_and_ends_the_session() {
    polling_close(Eio::V3).await;
}

/// A CLOSE packet ends the WebSocket.
async fn websocket_close_packet(eio: Eio) {
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    ws_send(&mut ws, Frame::text("1")).await;
    ws_expect_end(&mut ws, &[]).await;
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_close_packet_ends_the_connection() {
    websocket_close_packet(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_close_packet_ends_the_connection() {
    websocket_close_packet(Eio::V3).await;
}

/// The client's close frame is answered with one (RFC 6455, 5.5.1), then the stream ends.
async fn websocket_close_frame(eio: Eio) {
    let svc = server();
    let mut ws = ws_open(&svc, eio).await;
    within("sending a close frame", ws.close(None))
        .await
        .unwrap();
    match ws_next(&mut ws).await {
        Some(Ok(Frame::Close(_))) => {}
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    assert!(
        ws_next(&mut ws).await.is_none(),
        "the stream ends after the close"
    );
}

#[tokio::test(start_paused = true)]
async fn v4_websocket_close_frame_is_answered_with_a_close_frame() {
    websocket_close_frame(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_websocket_close_frame_is_answered_with_a_close_frame() {
    websocket_close_frame(Eio::V3).await;
}

// ----------------------------------------------------------------------------------------------
// Upgrade
// ----------------------------------------------------------------------------------------------

/// The probe is answered, a GET during the upgrade gets NOOP, and after UPGRADE messages flow
/// over the WebSocket.
async fn upgrade(eio: Eio) {
    let svc = server();
    let session = Polling::open(&svc, eio).await;
    let query = format!("{}&transport=websocket&sid={}", eio.param(), session.sid);
    let mut ws = ws_connect(&svc, &query).await.unwrap();
    ws_send(&mut ws, Frame::text("2probe")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    session.expect(&["6"]).await;
    ws_send(&mut ws, Frame::text("5")).await;
    ws_send(&mut ws, Frame::text("4hello")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "4hello");
}

#[tokio::test(start_paused = true)]
async fn v4_upgrade_moves_the_session_to_websocket() {
    upgrade(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_upgrade_moves_the_session_to_websocket() {
    upgrade(Eio::V3).await;
}

/// Once upgraded, polling requests for the session are refused; the WebSocket carries on.
async fn upgrade_then_polling(eio: Eio) {
    let svc = server();
    let (session, mut ws) = upgraded(&svc, eio).await;
    let res = session.get().await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.text());
    ws_send(&mut ws, Frame::text("4hello")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "4hello");
}

#[tokio::test(start_paused = true)]
async fn v4_upgrade_then_polling_is_refused() {
    upgrade_then_polling(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_upgrade_then_polling_is_refused() {
    upgrade_then_polling(Eio::V3).await;
}

/// Once upgraded, a second WebSocket for the session completes its handshake and is closed at
/// once; the first carries on.
async fn upgrade_then_second_websocket(eio: Eio) {
    let svc = server();
    let (session, mut ws) = upgraded(&svc, eio).await;
    let query = format!("{}&transport=websocket&sid={}", eio.param(), session.sid);
    let mut second = ws_connect(&svc, &query)
        .await
        .expect("the second WebSocket's handshake completes");
    ws_expect_end(&mut second, &[]).await;
    ws_send(&mut ws, Frame::text("4hello")).await;
    assert_eq!(ws_recv_text(&mut ws).await, "4hello");
}

#[tokio::test(start_paused = true)]
async fn v4_upgrade_then_second_websocket_is_closed() {
    upgrade_then_second_websocket(Eio::V4).await;
}

#[tokio::test(start_paused = true)]
async fn v3_upgrade_then_second_websocket_is_closed() {
    upgrade_then_second_websocket(Eio::V3).await;
}
