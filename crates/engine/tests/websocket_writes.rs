//! The server's own WebSocket writes: straight from the sender on plain TCP, through the task
//! on any other connection, with a client too slow to take them all at once.
#![allow(clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use socketlet_engine::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Socket};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

/// Bytes of padding in each flooded message.
const PAD: usize = 2000;

/// The padding of message `i` of `batches:N`: small and large frames mixed, some runs of small
/// ones fitting in one write and some not, one frame larger than a copied write.
fn batch_pad(i: usize) -> usize {
    [3, 2000, 5000, 3, 1500, 900][i % 6]
}

/// `batches:N` makes the server hand over N messages six at a time (`send_all`), padded by
/// [`batch_pad`]; `flood:N` makes the server send N numbered messages at once, half of them from another
/// thread than the session's, and a binary one after them; `fill:N` sends N from the session's
/// own task only. Records the sessions and how they
/// closed.
#[derive(Default)]
struct Flood {
    sessions: Mutex<Vec<Weak<Socket>>>,
    closed: Mutex<Vec<CloseReason>>,
}

impl EngineHandler for Flood {
    fn on_open(&self, socket: &Arc<Socket>) {
        self.sessions.lock().unwrap().push(Arc::downgrade(socket));
    }
    fn on_message(&self, socket: &Arc<Socket>, msg: Message) {
        let Message::Text(text) = msg else { return };
        let pad = "p".repeat(PAD);
        if let Some(n) = text.strip_prefix("mixed:") {
            // Every third message left to the task, the others written at once when they can.
            for i in 0..n.parse().unwrap() {
                let msg = [Message::Text(format!("{i}:{pad}").into())];
                let _ = if i % 3 == 0 {
                    socket.queue_all(msg)
                } else {
                    socket.send_all(msg)
                };
            }
            let _ = socket.send(Message::Binary(bytes::Bytes::from_static(&[1, 2, 3])));
            return;
        }
        if let Some(n) = text.strip_prefix("batches:") {
            let n: usize = n.parse().unwrap();
            for first in (0..n).step_by(6) {
                let msgs: Vec<Message> = (first..(first + 6).min(n))
                    .map(|i| Message::Text(format!("{i}:{}", "p".repeat(batch_pad(i))).into()))
                    .collect();
                socket.send_all(msgs).unwrap();
            }
            let _ = socket.send(Message::Binary(bytes::Bytes::from_static(&[1, 2, 3])));
            return;
        }
        if let Some(n) = text.strip_prefix("fill:") {
            for i in 0..n.parse().unwrap() {
                let _ = socket.send(Message::Text(format!("{i}:{pad}").into()));
            }
            return;
        }
        let Some(n) = text.strip_prefix("flood:") else {
            return;
        };
        let n: usize = n.parse().unwrap();
        for i in 0..n / 2 {
            socket
                .send(Message::Text(format!("{i}:{pad}").into()))
                .unwrap();
        }
        let socket = socket.clone();
        std::thread::spawn(move || {
            // Sends fail once the session is closed (one test closes it meanwhile).
            for i in n / 2..n {
                if socket
                    .send(Message::Text(format!("{i}:{pad}").into()))
                    .is_err()
                {
                    return;
                }
            }
            let _ = socket.send(Message::Binary(bytes::Bytes::from_static(&[1, 2, 3])));
        });
    }
    fn on_close(&self, _socket: &Arc<Socket>, reason: CloseReason) {
        self.closed.lock().unwrap().push(reason);
    }
}

fn engine() -> Engine {
    Engine::new(
        EngineConfig::default().with_max_buffered_packets(100_000),
        Arc::new(Flood::default()),
    )
}

/// Asks for `n` messages with `command` (`flood` or `mixed`), reads none for a while (the
/// server's writes back up), pings at the WebSocket level meanwhile, then checks every message
/// arrives whole and in order, and the pong too.
async fn flood_and_check<S>(ws: &mut WebSocketStream<S>, command: &str, n: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    flood_and_check_padded(ws, command, n, |_| PAD).await;
}

/// [`flood_and_check`] for messages of `pad(i)` bytes of padding.
async fn flood_and_check_padded<S>(
    ws: &mut WebSocketStream<S>,
    command: &str,
    n: usize,
    pad: fn(usize) -> usize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(WsMessage::text(format!("4{command}:{n}")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(WsMessage::Ping("are you there".into()))
        .await
        .unwrap();
    let (mut next, mut pongs) = (0usize, 0usize);
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap_or_else(|_| panic!("the server stalled after {next} messages, {pongs} pongs"))
            .unwrap()
            .unwrap();
        match frame {
            WsMessage::Text(text) => {
                if text.as_str() == "2" {
                    continue; // a heartbeat, should the test be slow
                }
                let padding = "p".repeat(pad(next));
                assert_eq!(
                    text.as_str(),
                    format!("4{next}:{padding}"),
                    "message {next}"
                );
                next += 1;
            }
            WsMessage::Binary(data) => {
                assert_eq!(next, n, "the binary message comes last");
                assert_eq!(&data[..], &[1, 2, 3]);
                break;
            }
            WsMessage::Pong(data) => {
                assert_eq!(&data[..], b"are you there");
                pongs += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 1, "the ping is answered once");
}

/// A WebSocket client of an engine served on TCP (with `serve`, as the binary does), past the
/// OPEN packet.
async fn over_tcp() -> WebSocketStream<tokio::net::TcpStream> {
    over_tcp_to(engine()).await
}

/// A WebSocket client of `engine` served on TCP, past the OPEN packet.
async fn over_tcp_to(engine: Engine) -> WebSocketStream<tokio::net::TcpStream> {
    let listener = socketlet_engine::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = socketlet_engine::EngineService::new(engine);
    // The server lives as long as the test's runtime.
    tokio::spawn(socketlet_engine::serve(
        listener,
        svc,
        std::future::pending(),
    ));
    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    ws
}

/// An engine served over an in-memory pipe with a 4 KiB buffer (what an application serving
/// the engine itself, over TLS say, looks like), and a WebSocket client on the other end, past
/// the OPEN packet.
async fn over_a_pipe(
    config: EngineConfig,
) -> (Arc<Flood>, Engine, WebSocketStream<tokio::io::DuplexStream>) {
    let (client_end, server_end) = tokio::io::duplex(4096);
    let handler = Arc::new(Flood::default());
    let engine = Engine::new(config, handler.clone());
    // The engine must outlive hyper's connection task, which ends at the upgrade.
    let served = engine.clone();
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| {
            let engine = served.clone();
            async move { Ok::<_, Infallible>(engine.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server_end), svc)
            .with_upgrades()
            .await;
    });
    let (mut ws, _) = tokio_tungstenite::client_async(
        "ws://localhost/engine.io/?EIO=4&transport=websocket",
        client_end,
    )
    .await
    .unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    (handler, engine, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_on_tcp_gets_every_frame_whole_and_in_order() {
    // 20 MB: far more than loopback's socket buffers take.
    flood_and_check(&mut over_tcp().await, "flood", 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_handed_over_together_arrive_whole_and_in_order() {
    // Several messages a hand-over go out in one write where they fit: 6,000 messages (8 MB)
    // make many of those writes short.
    flood_and_check_padded(&mut over_tcp().await, "batches", 6_000, batch_pad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_written_at_once_does_not_count_against_the_outbox_bound() {
    // Six messages a hand-over against a bound of 2 packets: a client that keeps up (its
    // socket buffer takes them all) is not closed as one that fell behind.
    let config = EngineConfig::default().with_max_buffered_packets(2);
    let mut ws = over_tcp_to(Engine::new(config, Arc::new(Flood::default()))).await;
    ws.send(WsMessage::text("4batches:12")).await.unwrap();
    for i in 0..12 {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        let padding = "p".repeat(batch_pad(i));
        assert_eq!(frame.to_text().unwrap(), format!("4{i}:{padding}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_on_another_kind_of_connection_too() {
    let config = EngineConfig::default().with_max_buffered_packets(100_000);
    let (_handler, _engine, mut ws) = over_a_pipe(config).await;
    flood_and_check(&mut ws, "flood", 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_left_to_the_task_are_not_overtaken_by_later_ones() {
    flood_and_check(&mut over_tcp().await, "mixed", 3_000).await;
}

#[tokio::test(start_paused = true)]
async fn a_closed_session_waits_for_a_client_that_does_not_read_five_seconds_at_most() {
    let (handler, engine, mut ws) = over_a_pipe(EngineConfig::default()).await;
    // No other thread: the test's clock is paused, a thread would race it.
    ws.send(WsMessage::text("4fill:100")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let session = handler.sessions.lock().unwrap()[0].upgrade().unwrap();
    session.close();
    drop(session);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let session = handler.sessions.lock().unwrap()[0].clone();
    assert!(
        session.upgrade().is_some(),
        "the task still tries to hand over the last packets"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        session.strong_count(),
        0,
        "the task is gone ({} sessions)",
        engine.session_count()
    );
    assert_eq!(*handler.closed.lock().unwrap(), [CloseReason::ServerClose]);
}

#[tokio::test(start_paused = true)]
async fn pings_from_a_client_that_does_not_read_cannot_fill_the_memory() {
    let (handler, _engine, mut ws) = over_a_pipe(EngineConfig::default()).await;
    // Each ping queues a pong of about 100 bytes; 16 KiB of them may wait behind bytes the
    // client has not taken.
    let payload = vec![7u8; 100];
    let mut sent = 0;
    while sent < 5_000 {
        let ping = ws.send(WsMessage::Ping(payload.clone().into()));
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    assert!(sent > 160, "the server stopped reading early: {sent} pings");
    assert!(sent < 5_000, "all pings were taken: no limit");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        *handler.closed.lock().unwrap(),
        [CloseReason::TransportClose]
    );
    assert!(handler.sessions.lock().unwrap()[0].upgrade().is_none());
}
