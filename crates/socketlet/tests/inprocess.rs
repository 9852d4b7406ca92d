//! In-process tests: the server driven through its tower service (polling) and through hyper
//! over an in-memory pipe (WebSocket), with tokio's paused clock for heartbeats and timeouts.
//!
//! Each test reads as a protocol transcript: what the client sends, what it must get back.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use socketlet::{ConnectError, Cors, DisconnectReason, EmitError, Event, Socket, SocketIo};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Answers `echo` with an ack when asked for one, else with an `echo` event; `join` joins the
/// room named by the first argument and acks with the rooms.
fn register_handlers(socket: &Socket) {
    socket.on("echo", |socket: Socket, ev: Event| async move {
        match ev.ack {
            Some(ack) => {
                let _ = ack.send(ev.data);
            }
            None => {
                let _ = socket.emit("echo", ev.data);
            }
        }
    });
    socket.on("join", |socket: Socket, ev: Event| async move {
        if let Some(room) = ev.data.str(0) {
            socket.join([room]);
        }
        if let Some(ack) = ev.ack {
            let mut rooms = socket.rooms();
            rooms.sort();
            let _ = ack.send(json!(rooms));
        }
    });
}

/// A server whose `/` echoes; every connected socket is handed to the returned channel, and
/// every disconnect reason to the second one.
fn echo_server(
    io: &SocketIo,
) -> (
    mpsc::UnboundedReceiver<Socket>,
    mpsc::UnboundedReceiver<DisconnectReason>,
) {
    let (sockets_tx, sockets) = mpsc::unbounded_channel();
    let (reasons_tx, reasons) = mpsc::unbounded_channel();
    io.of("/").on_connect(move |socket: Socket| {
        register_handlers(&socket);
        let reasons_tx = reasons_tx.clone();
        socket.on_disconnect(move |_socket, reason| {
            let _ = reasons_tx.send(reason);
            async {}
        });
        let _ = sockets_tx.send(socket);
        async {}
    });
    (sockets, reasons)
}

/// The next value of a channel the server feeds.
async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    within("a value from the server", rx.recv())
        .await
        .expect("channel closed")
}

/// A v4 polling client connected to `/`: its client and socket id.
async fn connected(io: &SocketIo) -> (Polling, String) {
    let client = Polling::open(io).await;
    let (id, before) = client.connect(None).await;
    assert!(before.is_empty(), "unexpected packets: {before:?}");
    (client, id)
}

// ---- 1. Engine.IO v4 / Socket.IO v5 over polling ----

#[tokio::test(start_paused = true)]
async fn v4_polling_handshake_connect_and_ack() {
    let io = SocketIo::new();
    io.of("/").on_connect(|socket: Socket| async move {
        register_handlers(&socket);
        let _ = socket.emit("welcome", socket.auth());
    });

    let res = get(&io, "EIO=4&transport=polling").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let packets = v4_packets(res.text());
    assert_eq!(packets.len(), 1, "{packets:?}");
    let open = open_json(&packets[0]);
    let sid = open["sid"].as_str().expect("sid");
    assert_eq!(sid.len(), 20);
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], 25_000);
    assert_eq!(open["pingTimeout"], 20_000);
    assert_eq!(open["maxPayload"], 1_000_000);
    let client = Polling {
        io: io.clone(),
        eio: 4,
        sid: sid.to_owned(),
        open,
    };

    client.send(r#"40{"token":"x"}"#).await;
    let packets = client.recv().await;
    assert_eq!(packets.len(), 2, "{packets:?}");
    // As in Node: the CONNECT first, then what the connection handler emitted (the welcome,
    // which sees the auth payload).
    let id = connect_sid(&packets[0]);
    assert_eq!(id.len(), 20);
    assert_ne!(id, client.sid, "v5 socket ids are not the engine's sid");
    assert_eq!(packets[1], r#"42["welcome",{"token":"x"}]"#);

    client.send(r#"421["echo","a"]"#).await;
    assert_eq!(client.recv_one().await, r#"431["a"]"#);
}

#[tokio::test(start_paused = true)]
async fn root_namespace_exists_without_being_declared() {
    // Node's server always has `/`: a client may connect to it even if the application never
    // touched it.
    let io = SocketIo::new();
    let client = Polling::open(&io).await;
    let (id, before) = client.connect(None).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(io.of("/").local().socket_count(), 1);
    assert!(io.of("/").get_socket(&id).is_some());
}

// ---- 2. Engine.IO v3 / Socket.IO v4 over polling ----

#[tokio::test(start_paused = true)]
async fn v3_polling_handshake_and_implicit_connect() {
    let io = SocketIo::new();
    let res = get(&io, "EIO=3&transport=polling").await;
    assert_eq!(res.status, StatusCode::OK);
    let body = res.text();
    // `<length>:0{...}`: the v3 text framing.
    let (len, rest) = body.split_once(':').expect("v3 framing");
    assert!(rest.starts_with("0{"), "{body:?}");
    assert!(len.parse::<usize>().is_ok(), "{body:?}");

    let mut packets = v3_packets(body);
    let open = open_json(&packets.remove(0));
    assert!(
        open.get("maxPayload").is_none(),
        "v3 has no maxPayload: {open}"
    );
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], 25_000);
    assert_eq!(open["pingTimeout"], 20_000);
    let client = Polling {
        io: io.clone(),
        eio: 3,
        sid: open["sid"].as_str().expect("sid").to_owned(),
        open,
    };

    // The implicit CONNECT to `/`, in the handshake answer or the next one.
    if packets.is_empty() {
        packets = client.recv().await;
    }
    assert_eq!(packets, vec!["40".to_owned()]);
    let socket = io.of("/").get_socket(&client.sid).expect("socket on /");
    assert_eq!(socket.protocol(), socketlet::ProtocolVersion::V4);
}

// ---- 3. Engine.IO errors ----

#[tokio::test(start_paused = true)]
async fn engine_errors_are_json_with_status() {
    let io = SocketIo::new();
    get(&io, "transport=polling")
        .await
        .assert_engine_error(400, 5);
    get(&io, "EIO=9&transport=polling")
        .await
        .assert_engine_error(400, 5);
    get(&io, "EIO=4&transport=carrier-pigeon")
        .await
        .assert_engine_error(400, 0);
    get(&io, "EIO=4").await.assert_engine_error(400, 0);
    get(&io, "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA")
        .await
        .assert_engine_error(400, 1);
    get(&io, "EIO=4&transport=polling&sid=nope")
        .await
        .assert_engine_error(400, 1);
    post(&io, "EIO=4&transport=polling", "40")
        .await
        .assert_engine_error(400, 2);
    assert_eq!(io.engine().session_count(), 0);

    let refusing = SocketIo::builder()
        .engine(|e| e.with_allow_request(|_| Err("nope".into())))
        .build();
    let res = get(&refusing, "EIO=4&transport=polling").await;
    res.assert_engine_error(403, 4);
    assert!(res.text().contains("nope"), "{:?}", res.text());
    assert_eq!(refusing.engine().session_count(), 0);
}

// ---- 4. Protocol violations close the session ----

#[tokio::test(start_paused = true)]
async fn malformed_socketio_packet_closes_the_session() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;

    client.send(r#"42["echo""#).await;
    assert_eq!(next(&mut reasons).await, DisconnectReason::ParseError);
    // Whatever was pending ends with the CLOSE packet; after that the session is gone.
    let packets = client.recv().await;
    assert_eq!(packets.last().map(String::as_str), Some("1"), "{packets:?}");
    client.get().await.assert_engine_error(400, 1);
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn overlapping_get_closes_the_session() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;

    let parked = client.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the first GET should be waiting");
    client.get().await.assert_engine_error(400, 3);
    assert_eq!(next(&mut reasons).await, DisconnectReason::TransportError);
    // The parked GET is released with the CLOSE packet.
    let res = within("the parked GET", parked).await.expect("task");
    assert_eq!(client.decode(&res), vec!["1".to_owned()]);
    client.get().await.assert_engine_error(400, 1);
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn post_over_max_payload_is_413_and_closes_the_session() {
    let io = SocketIo::builder().max_payload(64).build();
    let (_sockets, mut reasons) = echo_server(&io);
    let big = format!(r#"42["echo","{}"]"#, "x".repeat(100));

    // Without a Content-Length: the body is cut off while read.
    let (client, _id) = connected(&io).await;
    assert_eq!(client.open["maxPayload"], 64);
    let res = client.post(big.clone()).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(next(&mut reasons).await, DisconnectReason::TransportError);
    client.get().await.assert_engine_error(400, 1);

    // With a Content-Length: refused before reading.
    let (client, _id) = connected(&io).await;
    let len = big.len().to_string();
    let res = call(
        &io,
        request(
            Method::POST,
            &client.query(),
            &[("content-length", &len)],
            big,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(next(&mut reasons).await, DisconnectReason::TransportError);
    client.get().await.assert_engine_error(400, 1);
    assert_eq!(io.engine().session_count(), 0);

    // At the limit is fine.
    let (client, _id) = connected(&io).await;
    let filler = "y".repeat(64 - r#"421["echo",""]"#.len());
    let fits = format!(r#"421["echo","{filler}"]"#);
    assert_eq!(fits.len(), 64);
    client.send(&fits).await;
    assert_eq!(client.recv_one().await, format!(r#"431["{filler}"]"#));
}

// ---- 5. CORS ----

#[tokio::test(start_paused = true)]
async fn cors_same_origin_by_default() {
    let io = SocketIo::new();
    let handshake = "EIO=4&transport=polling";

    let res = call(
        &io,
        request(
            Method::GET,
            handshake,
            &[("host", "localhost:3000"), ("origin", "http://evil.test")],
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["message"], "Not an accepted origin.");
    assert!(res.header("access-control-allow-origin").is_none());
    assert_eq!(io.engine().session_count(), 0);

    let res = call(
        &io,
        request(
            Method::GET,
            handshake,
            &[
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));

    // Behind a TLS proxy.
    let res = call(
        &io,
        from_local_proxy(request(
            Method::GET,
            handshake,
            &[
                ("host", "127.0.0.1:8000"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("origin", "https://app.example.com"),
            ],
            "",
        )),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // The proxy's scheme is the one that counts.
    let res = call(
        &io,
        from_local_proxy(request(
            Method::GET,
            handshake,
            &[
                ("host", "127.0.0.1:8000"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("origin", "http://app.example.com"),
            ],
            "",
        )),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Preflight.
    let res = call(
        &io,
        request(
            Method::OPTIONS,
            handshake,
            &[
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type, x-token"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        res.header("access-control-allow-methods"),
        Some("OPTIONS, GET, POST")
    );
    assert_eq!(
        res.header("access-control-allow-headers"),
        Some("content-type, x-token")
    );
    // A refused origin gets no preflight approval either.
    let res = call(
        &io,
        request(
            Method::OPTIONS,
            handshake,
            &[("host", "localhost:3000"), ("origin", "http://evil.test")],
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.header("access-control-allow-methods").is_none());
    // Two handshakes passed; preflights create no session.
    assert_eq!(io.engine().session_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn cors_any_echoes_the_origin() {
    let io = SocketIo::builder().cors(Cors::Any).build();
    let res = call(
        &io,
        request(
            Method::GET,
            "EIO=4&transport=polling",
            &[
                ("host", "localhost:3000"),
                ("origin", "http://elsewhere.test"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://elsewhere.test"),
        "the origin is echoed, never *"
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    let sid = open_json(res.text())["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    // A POST of that session from the same foreign origin.
    let res = call(
        &io,
        request(
            Method::POST,
            &format!("EIO=4&transport=polling&sid={sid}"),
            &[
                ("host", "localhost:3000"),
                ("origin", "http://elsewhere.test"),
            ],
            "40",
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://elsewhere.test")
    );
}

// ---- 6. Heartbeats ----

#[tokio::test(start_paused = true)]
async fn heartbeat_without_pong_times_out() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let t0 = Instant::now();
    let (client, _id) = connected(&io).await;

    assert_eq!(client.recv_one().await, "2");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(25) && at < Duration::from_secs(26),
        "ping after {at:?}"
    );

    // No PONG: the session ends `ping_timeout` after the PING.
    assert_eq!(next(&mut reasons).await, DisconnectReason::PingTimeout);
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(45) && at < Duration::from_secs(46),
        "closed after {at:?}"
    );
    settle().await;
    assert_eq!(io.engine().session_count(), 0);
    client.get().await.assert_engine_error(400, 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_with_pong_stays_alive() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let t0 = Instant::now();
    let (client, _id) = connected(&io).await;

    assert_eq!(client.recv_one().await, "2");
    client.send("3").await;
    tokio::time::sleep_until(t0 + Duration::from_secs(47)).await;
    assert!(reasons.try_recv().is_err(), "the socket must still be up");
    assert_eq!(io.engine().session_count(), 1);

    // The next PING comes `ping_interval` after the PONG.
    assert_eq!(client.recv_one().await, "2");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(50) && at < Duration::from_secs(51),
        "second ping after {at:?}"
    );
    client.send("3").await;
    client.send(r#"421["echo","still here"]"#).await;
    assert_eq!(client.recv_one().await, r#"431["still here"]"#);
}

#[tokio::test(start_paused = true)]
async fn websocket_heartbeat_without_pong_times_out() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let t0 = Instant::now();
    let mut ws = ws_connect(&io, "EIO=4&transport=websocket")
        .await
        .expect("WebSocket handshake");
    open_json(&ws_recv_text(&mut ws).await);
    ws_send_text(&mut ws, "40").await;
    connect_sid(&ws_recv_text(&mut ws).await);

    assert_eq!(ws_recv_text(&mut ws).await, "2");
    assert_eq!(next(&mut reasons).await, DisconnectReason::PingTimeout);
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(45) && at < Duration::from_secs(46),
        "closed after {at:?}"
    );
    match ws_next(&mut ws).await {
        None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("expected the WebSocket to close, got {other:?}"),
    }
    settle().await;
    assert_eq!(io.engine().session_count(), 0);
    assert_eq!(io.of("/").local().socket_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn client_close_packet_disconnects_the_socket() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;

    client.send("1").await;
    assert_eq!(next(&mut reasons).await, DisconnectReason::TransportClose);
    assert_eq!(io.of("/").local().socket_count(), 0);
    // The session is gone at once, as in Node: the client that closed it polls no more, and a
    // late request is answered "Session ID unknown".
    assert_eq!(io.engine().session_count(), 0);
    client.get().await.assert_engine_error(400, 1);
}

// ---- 7. connect_timeout ----

#[tokio::test(start_paused = true)]
async fn session_without_connect_is_closed_after_connect_timeout() {
    let io = SocketIo::new();
    let t0 = Instant::now();
    let client = Polling::open(&io).await;
    assert_eq!(io.engine().session_count(), 1);

    // Keep the heartbeat going so only the connect timeout can end the session.
    assert_eq!(client.recv_one().await, "2");
    client.send("3").await;
    assert_eq!(client.recv_one().await, "1");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(45) && at < Duration::from_secs(46),
        "closed after {at:?}"
    );
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn silent_session_is_dropped_after_connect_timeout() {
    let io = SocketIo::builder()
        .ping_interval(Duration::from_secs(60))
        .ping_timeout(Duration::from_secs(60))
        .build();
    let t0 = Instant::now();
    let client = Polling::open(&io).await;
    let sid = socketlet_engine::Sid::parse(&client.sid).expect("sid");
    let session = io.engine().socket(sid).expect("session");

    tokio::time::sleep_until(t0 + Duration::from_millis(44_900)).await;
    assert!(!session.is_closed());
    tokio::time::sleep_until(t0 + Duration::from_secs(45)).await;
    settle().await;
    assert!(session.is_closed(), "closed by the connect timeout");

    // The client never polls again: its CLOSE packet waits `ping_timeout` for it, then the
    // session is dropped.
    within("the session to go", async {
        while io.engine().session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_secs(105) && at < Duration::from_secs(106),
        "dropped after {at:?}"
    );
}

// ---- 8. Middlewares and namespaces ----

#[tokio::test(start_paused = true)]
async fn middleware_refusal_and_unknown_namespace() {
    let io = SocketIo::new();
    io.of("/").use_middleware(|socket: Socket| async move {
        match socket.auth()["token"].as_str() {
            Some("good") => Ok(()),
            _ => Err(ConnectError::new("unauthorized").with_data(json!({"code": 401}))),
        }
    });
    let client = Polling::open(&io).await;

    client.send(r#"40{"token":"bad"}"#).await;
    let packet = client.recv_one().await;
    let payload: Value =
        serde_json::from_str(packet.strip_prefix("44").expect("CONNECT_ERROR")).expect("JSON");
    assert_eq!(
        payload,
        json!({"message": "unauthorized", "data": {"code": 401}})
    );
    assert_eq!(io.of("/").local().socket_count(), 0);

    client.send("40/nope,").await;
    assert_eq!(
        client.recv_one().await,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );

    // The connection survived both refusals.
    let (id, _) = client.connect(Some(r#"{"token":"good"}"#)).await;
    assert!(io.of("/").get_socket(&id).is_some());
}

// ---- 9. WebSocket ----

#[tokio::test(start_paused = true)]
async fn websocket_session_events_and_binary_acks() {
    let io = SocketIo::new();
    let _channels = echo_server(&io);
    let mut ws = ws_connect(&io, "EIO=4&transport=websocket")
        .await
        .expect("WebSocket handshake");

    let open = open_json(&ws_recv_text(&mut ws).await);
    assert_eq!(open["upgrades"], json!([]), "nothing to upgrade to");
    assert_eq!(open["maxPayload"], 1_000_000);
    assert_eq!(io.engine().session_count(), 1);

    ws_send_text(&mut ws, "40").await;
    let id = connect_sid(&ws_recv_text(&mut ws).await);
    assert!(io.of("/").get_socket(&id).is_some());

    ws_send_text(&mut ws, r#"421["echo",1]"#).await;
    assert_eq!(ws_recv_text(&mut ws).await, "431[1]");

    // BINARY_EVENT with one attachment and ack id 7, then the attachment.
    ws_send_text(&mut ws, r#"451-7["echo",{"_placeholder":true,"num":0}]"#).await;
    ws_send_binary(&mut ws, &[1, 2, 3, 255]).await;
    assert_eq!(
        ws_recv_text(&mut ws).await,
        r#"461-7[{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(&ws_recv_binary(&mut ws).await[..], &[1, 2, 3, 255]);

    // Heartbeats run on the WebSocket too.
    assert_eq!(ws_recv_text(&mut ws).await, "2");
    ws_send_text(&mut ws, "3").await;
}

// ---- 10. Upgrade from polling ----

#[tokio::test(start_paused = true)]
async fn upgrade_from_polling_to_websocket() {
    let io = SocketIo::new();
    let (mut sockets, _reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;
    let socket = next(&mut sockets).await;
    assert_eq!(socket.transport(), socketlet::TransportKind::Polling);

    let parked = client.spawn_get();
    settle().await;
    assert!(!parked.is_finished(), "the GET should be waiting");

    let mut ws = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", client.sid),
    )
    .await
    .expect("WebSocket handshake");
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    // The parked GET is released with a NOOP so the client can pause polling.
    let res = within("the parked GET", parked).await.expect("task");
    assert_eq!(client.decode(&res), vec!["6".to_owned()]);

    ws_send_text(&mut ws, "5").await;
    settle().await;
    assert_eq!(socket.transport(), socketlet::TransportKind::WebSocket);

    socket.emit("hello", json!("over ws")).expect("emit");
    assert_eq!(ws_recv_text(&mut ws).await, r#"42["hello","over ws"]"#);
    ws_send_text(&mut ws, r#"421["echo","z"]"#).await;
    assert_eq!(ws_recv_text(&mut ws).await, r#"431["z"]"#);

    // Polling is over for this session, and so is upgrading.
    client.get().await.assert_engine_error(400, 3);
    client
        .post("42[\"echo\"]")
        .await
        .assert_engine_error(400, 3);
    // A second WebSocket for the session completes its handshake (as in Node, so that a
    // WebSocket client sees a close, not a failed handshake) and is closed at once.
    let mut second = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", client.sid),
    )
    .await
    .expect("the second WebSocket's handshake");
    match ws_next(&mut second).await {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the second WebSocket to be closed, got {other:?}"),
    }
    // The first WebSocket is unaffected.
    ws_send_text(&mut ws, r#"421["echo","still"]"#).await;
    assert_eq!(ws_recv_text(&mut ws).await, r#"431["still"]"#);
    assert_eq!(io.engine().session_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn bad_v3_input_closes_the_session() {
    let io = SocketIo::builder()
        .engine(|e| e.with_allow_jsonp(true))
        .build();
    // A length that runs past the end of the body.
    let (client, _) = Polling::handshake(&io, 3).await;
    let res = client.post("9:42[\"x\"]").await;
    res.assert_engine_error(400, 3);
    client.get().await.assert_engine_error(400, 1);
    // A length that is not a number.
    let (client, _) = Polling::handshake(&io, 3).await;
    client.post("x:42").await.assert_engine_error(400, 3);
    client.get().await.assert_engine_error(400, 1);
    // A truncated XHR2 binary payload.
    let (client, _) = Polling::handshake(&io, 3).await;
    let req = request(
        Method::POST,
        &client.query(),
        &[("content-type", "application/octet-stream")],
        bytes::Bytes::from_static(&[1, 1, 0, 0xff, 4, 1]),
    );
    call(&io, req).await.assert_engine_error(400, 3);
    client.get().await.assert_engine_error(400, 1);
    // A JSONP index that is not a number.
    let (client, _) = Polling::handshake(&io, 3).await;
    let res = get(&io, &format!("{}&j=alert(1)", client.query())).await;
    res.assert_engine_error(400, 3);
    client.get().await.assert_engine_error(400, 1);
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_get_arriving_during_the_probe_is_answered_at_once() {
    // The race a browser hits: `3probe` goes out while no GET is parked, then the client's next
    // GET arrives. It must not be parked (the client waits for it before sending UPGRADE).
    let io = SocketIo::new();
    let (mut sockets, _reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;
    let socket = next(&mut sockets).await;
    let mut ws = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", client.sid),
    )
    .await
    .expect("WebSocket handshake");
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    let asked = Instant::now();
    assert_eq!(client.recv_one().await, "6");
    assert!(
        asked.elapsed() < Duration::from_millis(1),
        "the GET was parked"
    );
    ws_send_text(&mut ws, "5").await;
    settle().await;
    assert_eq!(socket.transport(), socketlet::TransportKind::WebSocket);
    socket.emit("hello", serde_json::json!(1)).unwrap();
    assert_eq!(ws_recv_text(&mut ws).await, r#"42["hello",1]"#);
}

#[tokio::test(start_paused = true)]
async fn upgrade_timeout_keeps_the_session_on_polling() {
    let io = SocketIo::new();
    let (mut sockets, mut reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;
    let socket = next(&mut sockets).await;

    let mut ws = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", client.sid),
    )
    .await
    .expect("WebSocket handshake");
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    let probed = Instant::now();

    // No UPGRADE packet: the WebSocket is closed after `upgrade_timeout`.
    match ws_next(&mut ws).await {
        None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("expected the WebSocket to close, got {other:?}"),
    }
    let at = probed.elapsed();
    assert!(
        at >= Duration::from_secs(10) && at < Duration::from_secs(11),
        "closed after {at:?}"
    );

    // The session goes on over polling.
    assert_eq!(socket.transport(), socketlet::TransportKind::Polling);
    assert!(reasons.try_recv().is_err(), "the socket must still be up");
    // No GET was parked during the probe, so no NOOP was queued either.
    client.send(r#"421["echo","polling"]"#).await;
    assert_eq!(client.recv_one().await, r#"431["polling"]"#);
    // And it may try again.
    let mut ws = ws_connect(
        &io,
        &format!("EIO=4&transport=websocket&sid={}", client.sid),
    )
    .await
    .expect("second upgrade attempt");
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    ws_send_text(&mut ws, "5").await;
    settle().await;
    assert_eq!(socket.transport(), socketlet::TransportKind::WebSocket);
}

// ---- 12. The bounded outbox ----

/// An observer that notes connection closes and volatile drops.
#[derive(Default)]
struct CloseLog {
    reasons: std::sync::Mutex<Vec<socketlet::engine::CloseReason>>,
    dropped: std::sync::Mutex<usize>,
}

impl socketlet::Observer for CloseLog {
    fn connection_closed(
        &self,
        _connection: &Arc<socketlet::engine::Connection>,
        reason: socketlet::engine::CloseReason,
    ) {
        self.reasons.lock().expect("not poisoned").push(reason);
    }

    fn volatile_dropped(&self, _nsp: &str, count: usize) {
        *self.dropped.lock().expect("not poisoned") += count;
    }
}

#[tokio::test(start_paused = true)]
async fn full_outbox_disconnects_a_client_that_never_reads() {
    let io = SocketIo::builder()
        .engine(|e| e.with_max_buffered_packets(4))
        .build();
    let (mut sockets, mut reasons) = echo_server(&io);
    let closes = Arc::new(CloseLog::default());
    io.observe(closes.clone());
    let (_client, _id) = connected(&io).await;
    let socket = next(&mut sockets).await;

    // Nothing waits for it: a volatile event is dropped, and observers hear of it.
    assert!(matches!(
        socket.emit_volatile("tick", json!(-1)),
        Err(EmitError::Dropped)
    ));
    io.of("/")
        .broadcast()
        .volatile()
        .emit("tick", json!(-1))
        .unwrap();
    assert_eq!(*closes.dropped.lock().expect("not poisoned"), 2);

    // The client never GETs again: four events fit, the fifth does not.
    for i in 0..4 {
        socket.emit("tick", json!(i)).expect("room in the outbox");
    }
    assert!(matches!(
        socket.emit("tick", json!(4)),
        Err(EmitError::BufferFull)
    ));
    assert_eq!(next(&mut reasons).await, DisconnectReason::TransportError);
    assert!(!socket.connected());
    // Clients see "transport error" as Node says it; observers know it was a slow client.
    assert_eq!(
        *closes.reasons.lock().expect("not poisoned"),
        [socketlet::engine::CloseReason::SlowClient]
    );
    assert!(matches!(
        socket.emit("tick", json!(5)),
        Err(EmitError::Disconnected)
    ));
}

// ---- 13. Attachment limits ----

#[tokio::test(start_paused = true)]
async fn attachment_flood_closes_the_session() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let (client, _id) = connected(&io).await;

    client
        .send(r#"4511-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(next(&mut reasons).await, DisconnectReason::ParseError);
    let packets = client.recv().await;
    assert_eq!(packets.last().map(String::as_str), Some("1"), "{packets:?}");
    client.get().await.assert_engine_error(400, 1);
}

// ---- 14. Rooms and broadcasts ----

#[tokio::test(start_paused = true)]
async fn rooms_broadcast_fetch_and_disconnect() {
    let io = SocketIo::new();
    let (_sockets, mut reasons) = echo_server(&io);
    let (a, a_id) = connected(&io).await;
    let (b, b_id) = connected(&io).await;

    a.send(r#"420["join","room1"]"#).await;
    let mut expected = vec!["room1".to_owned(), a_id.clone()];
    expected.sort();
    assert_eq!(a.recv_one().await, format!("430[{}]", json!(expected)));

    io.to("room1").emit("news", json!("hi")).expect("broadcast");
    assert_eq!(a.recv_one().await, r#"42["news","hi"]"#);
    // B has nothing until its first heartbeat.
    let t0 = Instant::now();
    assert_eq!(b.recv_one().await, "2");
    assert!(
        t0.elapsed() >= Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    b.send("3").await;
    assert_eq!(a.recv_one().await, "2");
    a.send("3").await;

    let mut infos = io.of("/").fetch_sockets().await.expect("fetch");
    infos.sort_by_key(|i| i.id != a_id);
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].id, a_id);
    let mut rooms = infos[0].rooms.clone();
    rooms.sort();
    assert_eq!(rooms, expected);
    assert_eq!(infos[1].id, b_id);
    assert_eq!(infos[1].rooms, vec![b_id.clone()]);
    let in_room = io.to("room1").fetch_sockets().await.expect("fetch");
    assert_eq!(in_room.len(), 1);
    assert_eq!(in_room[0].id, a_id);

    io.of("/")
        .broadcast()
        .disconnect_sockets()
        .await
        .expect("disconnect");
    assert_eq!(a.recv_one().await, "41");
    assert_eq!(b.recv_one().await, "41");
    for _ in 0..2 {
        assert_eq!(
            next(&mut reasons).await,
            DisconnectReason::ServerNamespaceDisconnect
        );
    }
    assert_eq!(io.of("/").local().socket_count(), 0);
    assert!(io.of("/").local().rooms().is_empty());
    // Only the namespace was left: the connections are still open.
    assert_eq!(io.engine().session_count(), 2);
}

// ---- 15. Broadcasts with acks ----

#[tokio::test(start_paused = true)]
async fn broadcast_with_acks_collects_answers_and_reports_the_missing() {
    let io = SocketIo::new();
    let _channels = echo_server(&io);
    let (a, a_id) = connected(&io).await;
    let (b, b_id) = connected(&io).await;
    for client in [&a, &b] {
        client.send(r#"420["join","r"]"#).await;
        client.recv_one().await;
    }

    let op = io.to("r").timeout(Duration::from_secs(5));
    let asking = tokio::spawn({
        let op = op.clone();
        async move { op.emit_with_ack("question", json!(1)).await }
    });
    for (client, answer) in [(&a, "from a"), (&b, "from b")] {
        let (id, args) = event_with_id(&client.recv_one().await);
        assert_eq!(args, json!(["question", 1]));
        client.send(&format!(r#"43{id}["{answer}"]"#)).await;
    }
    let acks = within("the acks", asking)
        .await
        .expect("task")
        .expect("emit");
    assert!(acks.missing.is_empty(), "{:?}", acks.missing);
    let mut answers: Vec<(String, Value)> = acks
        .responses
        .iter()
        .map(|(id, data)| (id.clone(), json!(data.args)))
        .collect();
    answers.sort_by_key(|(id, _)| id != &a_id);
    assert_eq!(
        answers,
        vec![
            (a_id.clone(), json!(["from a"])),
            (b_id.clone(), json!(["from b"]))
        ]
    );

    // B stays silent this time.
    let t0 = Instant::now();
    let asking = tokio::spawn(async move { op.emit_with_ack("question", json!(2)).await });
    let (id, _) = event_with_id(&a.recv_one().await);
    a.send(&format!(r#"43{id}["again"]"#)).await;
    let (_, args) = event_with_id(&b.recv_one().await);
    assert_eq!(args, json!(["question", 2]));
    let acks = within("the acks", asking)
        .await
        .expect("task")
        .expect("emit");
    assert!(t0.elapsed() >= Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(acks.responses.len(), 1);
    assert_eq!(acks.responses[0].0, a_id);
    assert_eq!(acks.missing, vec![b_id]);
}

/// A fan-out walks its receivers in batches (it warms a few ahead of sending): every receiver of
/// a room larger than a batch, at any place in it, gets each packet once and answers once.
#[tokio::test(start_paused = true)]
async fn a_room_larger_than_a_warm_batch_gets_everything_once() {
    let io = SocketIo::new();
    let _channels = echo_server(&io);
    let mut clients = Vec::new();
    for _ in 0..19 {
        let (client, id) = connected(&io).await;
        client.send(r#"420["join","r"]"#).await;
        client.recv_one().await;
        clients.push((client, id));
    }

    io.to("r").emit("news", json!(1)).expect("emit");
    io.to("r").emit("news", json!(2)).expect("emit");
    for (client, _) in &clients {
        assert_eq!(
            client.recv().await,
            [r#"42["news",1]"#, r#"42["news",2]"#],
            "each packet once, in order"
        );
    }

    let asking = tokio::spawn({
        let op = io.to("r").timeout(Duration::from_secs(5));
        async move { op.emit_with_ack("question", json!(3)).await }
    });
    for (client, id) in &clients {
        let (ack, args) = event_with_id(&client.recv_one().await);
        assert_eq!(args, json!(["question", 3]));
        client.send(&format!(r#"43{ack}["{id}"]"#)).await;
    }
    let acks = within("the acks", asking)
        .await
        .expect("task")
        .expect("emit");
    assert!(acks.missing.is_empty(), "{:?}", acks.missing);
    let mut answered: Vec<String> = acks.responses.iter().map(|(id, _)| id.clone()).collect();
    let mut expected: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    answered.sort();
    expected.sort();
    assert_eq!(answered, expected);
    for (socket_id, data) in &acks.responses {
        assert_eq!(json!(data.args), json!([socket_id]));
    }
}

// ---- adapters hear rooms come and go ----

/// The in-memory adapter, plus a log of the room hooks (what a per-room subscriber listens to).
struct RoomLog {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl socketlet::Adapter for RoomLog {
    // Everything else is the default: this node only.

    fn room_created(&self, local: &socketlet::LocalNamespace, room: &str, private: bool) {
        let kind = if private { "own" } else { "named" };
        assert!(local.has_room(room), "{room} announced before it exists");
        self.log
            .lock()
            .expect("log")
            .push(format!("+{kind} {room}"));
    }

    fn room_deleted(&self, local: &socketlet::LocalNamespace, room: &str, private: bool) {
        let kind = if private { "own" } else { "named" };
        assert!(
            !local.has_room(room),
            "{room} announced gone while it has sockets"
        );
        self.log
            .lock()
            .expect("log")
            .push(format!("-{kind} {room}"));
    }
}

#[tokio::test(start_paused = true)]
async fn adapters_hear_rooms_come_and_go() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let for_factory = log.clone();
    let io = SocketIo::builder()
        .adapter(std::sync::Arc::new(move |_nsp: &str| {
            std::sync::Arc::new(RoomLog {
                log: for_factory.clone(),
            }) as std::sync::Arc<dyn socketlet::Adapter>
        }))
        .build();
    let (_sockets, _reasons) = echo_server(&io);
    let (a, a_id) = connected(&io).await;
    let (_b, b_id) = connected(&io).await;
    let take = || std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(take(), [format!("+own {a_id}"), format!("+own {b_id}")]);

    // The first member creates the room, the second does not; leaving in turn deletes it once.
    let (sa, sb) = (
        io.of("/").get_socket(&a_id).unwrap(),
        io.of("/").get_socket(&b_id).unwrap(),
    );
    sa.join(["r1", "r2"]);
    sb.join(["r1"]);
    assert_eq!(take(), ["+named r1", "+named r2"]);
    sa.leave("r1");
    assert_eq!(take(), Vec::<String>::new());
    sb.leave("r1");
    assert_eq!(take(), ["-named r1"]);

    // A disconnect deletes the rooms the socket was alone in, then its own.
    a.send("41").await;
    settle().await;
    assert_eq!(take(), ["-named r2".to_owned(), format!("-own {a_id}")]);
}

#[tokio::test(start_paused = true)]
async fn outgoing_listeners_see_emits_and_broadcasts_of_their_socket_only() {
    let io = SocketIo::new();
    let (mut sockets, _reasons) = echo_server(&io);
    let (a, _) = connected(&io).await;
    let server_a = next(&mut sockets).await;
    let (b, _) = connected(&io).await;
    let _server_b = next(&mut sockets).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    server_a.on_any_outgoing(move |_socket, event| {
        let _ = seen_tx.send((event.name, event.data.args));
        async {}
    });

    server_a.emit("direct", json!(1)).unwrap();
    io.of("/").emit("all", json!(2)).unwrap();
    assert_eq!(next(&mut seen).await, ("direct".to_owned(), vec![json!(1)]));
    assert_eq!(next(&mut seen).await, ("all".to_owned(), vec![json!(2)]));
    assert_eq!(a.recv().await, [r#"42["direct",1]"#, r#"42["all",2]"#]);
    assert_eq!(b.recv().await, [r#"42["all",2]"#]);
    settle().await;
    assert!(seen.try_recv().is_err(), "b's packets are not a's");
}
