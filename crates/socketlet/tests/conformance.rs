//! socketlet held to every behaviour that the official Socket.IO v5 protocol test suite checks
//! (its "Engine.IO protocol" part over `/socket.io`: handshake, heartbeat, close, upgrade; and
//! its "Socket.IO protocol" part: connect, disconnect, message), with the application and
//! settings that suite expects (`conformance/app.rs`, which `examples/socketio_conformance.rs`
//! serves too).
//!
//! Nothing touches the network: polling goes through the tower service, WebSockets run over an
//! in-memory pipe served by hyper (see `common`). The clock is tokio's paused one, so heartbeats
//! and timeouts cost no real time. Each test reads as a protocol transcript.
#![allow(clippy::unwrap_used)]

#[path = "conformance/app.rs"]
mod app;
mod common;

use app::{server, CONNECT_TIMEOUT};
use common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use socketlet::SocketIo;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// The JSON after a CONNECT prefix (`40` or `40/custom,`): it must be `{"sid": <string>}` and
/// nothing else. Returns the socket id.
#[track_caller]
fn check_connect(packet: &str, prefix: &str) -> String {
    let json: Value = serde_json::from_str(
        packet
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}..., got {packet:?}")),
    )
    .unwrap_or_else(|e| panic!("CONNECT payload of {packet:?}: {e}"));
    let object = json.as_object().expect("CONNECT payload is an object");
    assert_eq!(object.len(), 1, "only the sid: {json}");
    object["sid"].as_str().expect("sid is a string").to_owned()
}

/// Asserts that the WebSocket handshake with `query` is refused (a 400 instead of a 101).
async fn ws_refused(io: &SocketIo, query: &str) {
    assert_ws_refused(ws_connect(io, query).await, query);
}

/// Opens a WebSocket session (no sid) and checks its OPEN frame: nothing to upgrade to.
async fn ws_open(io: &SocketIo) -> Ws {
    let mut ws = ws_connect(io, "EIO=4&transport=websocket").await.unwrap();
    check_open(Eio::V4, &ws_recv_text(&mut ws).await, &[]);
    ws
}

/// Reads until the server ends the connection (close frame, end of stream, or a reset); any
/// text frame before that must be one of `allowed`.
async fn ws_expect_end(ws: &mut Ws, allowed: &[&str]) {
    loop {
        match ws_next(ws).await {
            Some(Ok(Message::Close(_))) | None => return,
            Some(Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ),
            )) => return,
            Some(Ok(Message::Text(t))) if allowed.contains(&t.as_str()) => {}
            other => panic!("expected the connection to end, got {other:?}"),
        }
    }
}

/// The server ends the connection at once, before any heartbeat: the input caused it, not a
/// timer. A close the server decides may be announced by an Engine.IO CLOSE packet first.
async fn ws_expect_end_now(ws: &mut Ws) {
    let since = Instant::now();
    ws_expect_end(ws, &["1"]).await;
    assert!(since.elapsed() < PING_INTERVAL, "{:?}", since.elapsed());
}

/// The next frame that is not a PING (which the suite's multi-packet reads skip).
async fn ws_next_skipping_pings(ws: &mut Ws) -> Message {
    loop {
        match ws_next(ws).await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {}
            Some(Ok(frame)) => return frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Sends the CONNECT `packet`, checks the server's CONNECT (after `prefix`) and the `auth`
/// event the application sends then (`auth_event`). Returns the socket id.
async fn sio_connect(ws: &mut Ws, packet: &str, prefix: &str, auth_event: &str) -> String {
    ws_send_text(ws, packet).await;
    let id = check_connect(&ws_recv_text(ws).await, prefix);
    assert_eq!(ws_recv_text(ws).await, auth_event);
    id
}

/// A WebSocket connected to `/` without payload, as the suite's Socket.IO tests start: OPEN,
/// `40`, the CONNECT answer, the `auth` event. Returns the WebSocket and the socket id.
async fn sio_connected(io: &SocketIo) -> (Ws, String) {
    let mut ws = ws_open(io).await;
    let id = sio_connect(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
    (ws, id)
}

/// Opens a polling session and upgrades it: WebSocket with its sid, `2probe`, `3probe`, `5`.
async fn upgrade(io: &SocketIo) -> (Polling, Ws) {
    let session = Polling::open(io).await;
    let query = format!("EIO=4&transport=websocket&sid={}", session.sid);
    let mut ws = ws_connect(io, &query).await.unwrap();
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    ws_send_text(&mut ws, "5").await;
    (session, ws)
}

/// [`upgrade`], and the server has taken it in.
async fn upgraded(io: &SocketIo) -> (Polling, Ws) {
    let upgraded = upgrade(io).await;
    settle().await;
    upgraded
}

// ----------------------------------------------------------------------------------------------
// Engine.IO protocol: handshake
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn polling_handshake_opens_a_session() {
    let io = server();
    let res = get(&io, "EIO=4&transport=polling").await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    let packets = v4_packets(res.text());
    assert_eq!(packets.len(), 1, "only the OPEN packet: {packets:?}");
    let sid = check_open(Eio::V4, &packets[0], &["websocket"]);
    assert!(!sid.is_empty());
}

#[tokio::test(start_paused = true)]
async fn polling_handshake_refuses_a_missing_or_unknown_eio() {
    let io = server();
    for query in ["transport=polling", "EIO=abc&transport=polling"] {
        get(&io, query).await.assert_engine_error(400, 5);
    }
}

#[tokio::test(start_paused = true)]
async fn polling_handshake_refuses_a_missing_or_unknown_transport() {
    let io = server();
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        get(&io, query).await.assert_engine_error(400, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn polling_handshake_refuses_methods_other_than_get() {
    let io = server();
    for method in [Method::POST, Method::PUT] {
        let req = request(method, "EIO=4&transport=polling", &[], "");
        call(&io, req).await.assert_engine_error(400, 2);
    }
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn websocket_handshake_opens_a_session_without_upgrades() {
    // `ws_open` checks the OPEN frame: the settings and `upgrades: []`.
    let io = server();
    let _ws = ws_open(&io).await;
    assert_eq!(io.engine().session_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn websocket_handshake_refuses_a_missing_or_unknown_eio() {
    let io = server();
    ws_refused(&io, "transport=websocket").await;
    ws_refused(&io, "EIO=abc&transport=websocket").await;
}

#[tokio::test(start_paused = true)]
async fn websocket_handshake_refuses_a_missing_or_unknown_transport() {
    let io = server();
    ws_refused(&io, "EIO=4").await;
    ws_refused(&io, "EIO=4&transport=abc").await;
    assert_eq!(io.engine().session_count(), 0);
}

// ----------------------------------------------------------------------------------------------
// Engine.IO protocol: heartbeat
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn polling_server_pings_and_accepts_pongs() {
    let io = server();
    let session = Polling::open(&io).await;
    for _ in 0..3 {
        let asked = Instant::now();
        let res = session.get().await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
        assert_eq!(res.text(), "2");
        assert!(asked.elapsed() >= PING_INTERVAL, "{:?}", asked.elapsed());
        session.send("3").await;
    }
}

#[tokio::test(start_paused = true)]
async fn polling_ping_timeout_closes_the_session() {
    let io = server();
    let session = Polling::open(&io).await;
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT).await;
    // Let the server's own timer, due at this very instant, run first.
    settle().await;
    session.get().await.assert_engine_error(400, 1);
}

#[tokio::test(start_paused = true)]
async fn websocket_server_pings_and_accepts_pongs() {
    let io = server();
    let mut ws = ws_open(&io).await;
    for _ in 0..3 {
        let asked = Instant::now();
        assert_eq!(ws_recv_text(&mut ws).await, "2");
        assert!(asked.elapsed() >= PING_INTERVAL, "{:?}", asked.elapsed());
        ws_send_text(&mut ws, "3").await;
    }
}

#[tokio::test(start_paused = true)]
async fn websocket_ping_timeout_closes_the_connection() {
    let opened = Instant::now();
    let io = server();
    let mut ws = ws_open(&io).await;
    // The PING goes unanswered: closed after pingInterval + pingTimeout, well before the
    // connect timeout could do it.
    ws_expect_end(&mut ws, &["2"]).await;
    let at = opened.elapsed();
    assert!(
        at >= PING_INTERVAL + PING_TIMEOUT && at < CONNECT_TIMEOUT,
        "{at:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// Engine.IO protocol: close
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn polling_close_releases_the_parked_get_and_ends_the_session() {
    let io = server();
    let session = Polling::open(&io).await;
    let parked = session.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the GET waits for packets");
    let _ = session.post("1").await;
    let res = within("the parked GET", parked).await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    assert_eq!(res.text(), "6");
    session.get().await.assert_engine_error(400, 1);
}

#[tokio::test(start_paused = true)]
async fn websocket_close_packet_ends_the_connection() {
    let io = server();
    let mut ws = ws_open(&io).await;
    ws_send_text(&mut ws, "1").await;
    ws_expect_end_now(&mut ws).await;
    settle().await;
    assert_eq!(io.engine().session_count(), 0);
}

// ----------------------------------------------------------------------------------------------
// Engine.IO protocol: upgrade
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn upgrade_from_polling_to_websocket() {
    let io = server();
    let (_session, mut ws) = upgrade(&io).await;
    // The session now lives on the WebSocket: a Socket.IO connection runs over it.
    sio_connect(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
    assert_eq!(io.engine().session_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn upgrade_then_polling_is_refused() {
    let io = server();
    let (session, mut ws) = upgraded(&io).await;
    session.get().await.assert_engine_error(400, 3);
    // The WebSocket carries on.
    ws_send_text(&mut ws, "40").await;
    check_connect(&ws_recv_text(&mut ws).await, "40");
}

#[tokio::test(start_paused = true)]
async fn upgrade_then_second_websocket_is_closed() {
    let io = server();
    let (session, mut ws) = upgraded(&io).await;
    let query = format!("EIO=4&transport=websocket&sid={}", session.sid);
    // Its handshake completes (a browser sees a close, not a failed handshake), then the server
    // closes it.
    let mut second = ws_connect(&io, &query)
        .await
        .expect("the second WebSocket's handshake completes");
    ws_expect_end_now(&mut second).await;
    // The first carries on.
    ws_send_text(&mut ws, "40").await;
    check_connect(&ws_recv_text(&mut ws).await, "40");
    assert_eq!(io.engine().session_count(), 1);
}

// ----------------------------------------------------------------------------------------------
// Socket.IO protocol: connect
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn connect_to_the_main_namespace() {
    let io = server();
    let mut ws = ws_open(&io).await;
    // No payload: the handler sees `{}`, not null.
    let id = sio_connect(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
    assert!(io.of("/").get_socket(&id).is_some());
}

#[tokio::test(start_paused = true)]
async fn connect_to_the_main_namespace_with_a_payload() {
    let io = server();
    let mut ws = ws_open(&io).await;
    let id = sio_connect(
        &mut ws,
        r#"40{"token":"123"}"#,
        "40",
        r#"42["auth",{"token":"123"}]"#,
    )
    .await;
    assert!(io.of("/").get_socket(&id).is_some());
}

#[tokio::test(start_paused = true)]
async fn connect_to_a_custom_namespace() {
    let io = server();
    let mut ws = ws_open(&io).await;
    let id = sio_connect(
        &mut ws,
        "40/custom,",
        "40/custom,",
        r#"42/custom,["auth",{}]"#,
    )
    .await;
    assert!(io.of("/custom").get_socket(&id).is_some());
    assert_eq!(
        io.of("/").local().socket_count(),
        0,
        "only /custom was joined"
    );
}

#[tokio::test(start_paused = true)]
async fn connect_to_a_custom_namespace_with_a_payload() {
    let io = server();
    let mut ws = ws_open(&io).await;
    let id = sio_connect(
        &mut ws,
        r#"40/custom,{"token":"abc"}"#,
        "40/custom,",
        r#"42/custom,["auth",{"token":"abc"}]"#,
    )
    .await;
    assert!(io.of("/custom").get_socket(&id).is_some());
}

#[tokio::test(start_paused = true)]
async fn connect_to_an_unknown_namespace_is_refused() {
    let io = server();
    let mut ws = ws_open(&io).await;
    // No comma after the name: the namespace ends with the packet.
    ws_send_text(&mut ws, "40/random").await;
    assert_eq!(
        ws_recv_text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    assert!(io.namespace("/random").is_none());
}

#[tokio::test(start_paused = true)]
async fn invalid_handshake_closes_the_connection() {
    let io = server();
    let mut ws = ws_open(&io).await;
    // A Socket.IO packet of unknown type `a` instead of a CONNECT.
    ws_send_text(&mut ws, "4abc").await;
    ws_expect_end_now(&mut ws).await;
}

#[tokio::test(start_paused = true)]
async fn no_connect_within_connect_timeout_closes_the_connection() {
    let opened = Instant::now();
    let io = server();
    let mut ws = ws_open(&io).await;
    // Keep the heartbeat going, so only the connect timeout can end the connection.
    loop {
        match ws_next(&mut ws).await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws_send_text(&mut ws, "3").await;
            }
            // The server's CLOSE packet, then the end.
            Some(Ok(Message::Text(t))) if t.as_str() == "1" => {
                ws_expect_end(&mut ws, &[]).await;
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
            other => panic!("expected PING or the end, got {other:?}"),
        }
    }
    let at = opened.elapsed();
    assert!(
        at >= CONNECT_TIMEOUT && at < CONNECT_TIMEOUT + PING_INTERVAL,
        "{at:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// Socket.IO protocol: disconnect
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn disconnect_from_the_main_namespace() {
    let io = server();
    let (mut ws, id) = sio_connected(&io).await;
    ws_send_text(&mut ws, "41").await;
    // Nothing answers the DISCONNECT, and the connection stays: the next frame is a PING.
    assert_eq!(ws_recv_text(&mut ws).await, "2");
    assert!(io.of("/").get_socket(&id).is_none());
    assert_eq!(io.of("/").local().socket_count(), 0);
    // The client may join again, as a new socket.
    ws_send_text(&mut ws, "3").await;
    let again = sio_connect(&mut ws, "40", "40", r#"42["auth",{}]"#).await;
    assert_ne!(again, id);
}

#[tokio::test(start_paused = true)]
async fn connect_then_disconnect_from_a_custom_namespace() {
    let io = server();
    let (mut ws, _id) = sio_connected(&io).await;
    assert_eq!(ws_recv_text(&mut ws).await, "2");
    ws_send_text(&mut ws, "3").await;

    // Namespaces without the trailing comma.
    let custom = sio_connect(
        &mut ws,
        "40/custom",
        "40/custom,",
        r#"42/custom,["auth",{}]"#,
    )
    .await;
    assert!(io.of("/custom").get_socket(&custom).is_some());

    ws_send_text(&mut ws, "41/custom").await;
    ws_send_text(&mut ws, r#"42["message","message to main namespace"]"#).await;
    // `/` is unaffected.
    assert_eq!(
        ws_recv_text(&mut ws).await,
        r#"42["message-back","message to main namespace"]"#
    );
    assert_eq!(io.of("/custom").local().socket_count(), 0);
    assert_eq!(io.of("/").local().socket_count(), 1);
}

// ----------------------------------------------------------------------------------------------
// Socket.IO protocol: message
// ----------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn plain_text_event() {
    let io = server();
    let (mut ws, _id) = sio_connected(&io).await;
    ws_send_text(&mut ws, r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        ws_recv_text(&mut ws).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
}

/// Sends `packet` with two attachments, `[1, 2, 3]` and `[4, 5, 6]`; the next non-PING frames
/// must be `answer` and the same two attachments.
async fn binary_round_trip(ws: &mut Ws, packet: &str, answer: &str) {
    ws_send_text(ws, packet).await;
    ws_send_binary(ws, &[1, 2, 3]).await;
    ws_send_binary(ws, &[4, 5, 6]).await;
    match ws_next_skipping_pings(ws).await {
        Message::Text(t) => assert_eq!(t.as_str(), answer),
        other => panic!("expected {answer:?}, got {other:?}"),
    }
    for expected in [[1u8, 2, 3], [4, 5, 6]] {
        match ws_next_skipping_pings(ws).await {
            Message::Binary(b) => assert_eq!(&b[..], expected),
            other => panic!("expected an attachment, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn event_with_binary_attachments() {
    let io = server();
    let (mut ws, _id) = sio_connected(&io).await;
    binary_round_trip(
        &mut ws,
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn plain_text_event_with_an_ack() {
    let io = server();
    let (mut ws, _id) = sio_connected(&io).await;
    ws_send_text(&mut ws, r#"42456["message-with-ack",1,"2",{"3":[false]}]"#).await;
    assert_eq!(ws_recv_text(&mut ws).await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test(start_paused = true)]
async fn event_with_binary_attachments_and_an_ack() {
    let io = server();
    let (mut ws, _id) = sio_connected(&io).await;
    binary_round_trip(
        &mut ws,
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
}

/// A connected socket sends `packet`: the server ends the connection at once, and the socket
/// is gone.
async fn closes_the_connection(packet: &str) {
    let io = server();
    let (mut ws, id) = sio_connected(&io).await;
    ws_send_text(&mut ws, packet).await;
    ws_expect_end_now(&mut ws).await;
    settle().await;
    assert!(io.of("/").get_socket(&id).is_none(), "{packet}");
}

#[tokio::test(start_paused = true)]
async fn unknown_packet_type_closes_the_connection() {
    closes_the_connection("4abc").await;
}

#[tokio::test(start_paused = true)]
async fn invalid_payload_format_closes_the_connection() {
    // An EVENT's payload must be an array.
    closes_the_connection("42{}").await;
}

#[tokio::test(start_paused = true)]
async fn invalid_ack_id_closes_the_connection() {
    closes_the_connection(r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#).await;
}
