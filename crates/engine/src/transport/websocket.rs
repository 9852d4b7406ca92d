//! WebSocket: a direct session, or the upgrade of a polling session (`2probe`, `3probe`, `5`).
//!
//! One task per WebSocket reads frames (tungstenite), writes what senders could not write
//! themselves (see [`super::ws_io`]: the outbox, batched into one write) and runs the heartbeat
//! timer.

use crate::body::{self, ResponseBody};
use crate::engine::now;
use crate::http1::{PendingUpgrade, Upgraded, UpgradedIo};
use crate::socket::Socket;
use crate::transport::polling::react;
use crate::transport::ws_io::{drain, WsIo};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use socketlet_engineio_proto::session::{CloseReason, TimerAction, Transport};
use socketlet_engineio_proto::{ErrorCode, Packet, ProtocolVersion, Str};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<WsIo>;

/// Whether the request asks for a WebSocket (`Upgrade: websocket`, `Connection: upgrade`, a
/// key, version 13).
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13")
}

/// Answers the WebSocket handshake (101) and returns the pending upgrade.
fn accept<B>(mut req: Request<B>) -> Result<(Response<ResponseBody>, OnUpgrade), ErrorCode> {
    if !is_upgrade_request(req.headers()) {
        return Err(ErrorCode::BadRequest);
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .ok_or(ErrorCode::BadRequest)?;
    let accept = HeaderValue::from_str(&key).map_err(|_| ErrorCode::BadRequest)?;
    let pending = req.extensions_mut().remove::<PendingUpgrade>();
    let on_upgrade = match pending.and_then(|p| p.take()) {
        Some(rx) => OnUpgrade::Own(rx),
        None => OnUpgrade::Hyper(hyper::upgrade::on(&mut req)),
    };
    let mut res = body::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok((res, on_upgrade))
}

/// The connection a 101 hands over: from `serve`'s own HTTP/1.1, or from hyper (a service
/// that axum or hyper serves).
enum OnUpgrade {
    Own(oneshot::Receiver<Upgraded>),
    Hyper(hyper::upgrade::OnUpgrade),
}

impl OnUpgrade {
    /// Waits for the 101 to be written and the connection handed over.
    async fn wait(self) -> Result<Upgraded, String> {
        match self {
            OnUpgrade::Own(rx) => rx
                .await
                .map_err(|_| "the connection ended before the switch".to_string()),
            OnUpgrade::Hyper(on_upgrade) => {
                let upgraded = on_upgrade.await.map_err(|e| e.to_string())?;
                Ok(match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => Upgraded {
                        io: UpgradedIo::Tcp(parts.io.into_inner()),
                        pre: parts.read_buf,
                    },
                    Err(upgraded) => Upgraded {
                        io: UpgradedIo::Other(Box::new(TokioIo::new(upgraded))),
                        pre: Bytes::new(),
                    },
                })
            }
        }
    }
}

async fn connect(socket: &Arc<Socket>, on_upgrade: OnUpgrade) -> Option<Ws> {
    let upgraded = match on_upgrade.wait().await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(sid = %socket.sid(), "WebSocket upgrade failed: {e}");
            return None;
        }
    };
    let (max, read_buffer) = socket
        .shared()
        .map(|s| {
            (
                usize::try_from(s.config.max_payload).unwrap_or(usize::MAX),
                s.config.websocket_read_buffer,
            )
        })
        .unwrap_or((1_000_000, 512));
    // `maxPayload` bounds messages; a control frame (at most 125 bytes) passes whatever it is,
    // as in Node's `ws`, which counts only data frames against it.
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(max))
        .max_frame_size(Some(max.max(125)));
    let io = WsIo::new(socket.clone(), upgraded);
    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
}

/// A new session whose first transport is WebSocket.
pub(crate) fn open<B>(socket: Arc<Socket>, req: Request<B>) -> Response<ResponseBody> {
    let (res, on_upgrade) = match accept(req) {
        Ok(x) => x,
        Err(code) => {
            socket.close_with(CloseReason::TransportError, false);
            return body::json_error(code);
        }
    };
    socket.lock().ws_attached = true;
    if let Some(shared) = socket.shared() {
        shared.handler.on_open(&socket);
    }
    tokio::spawn(async move {
        // Every idle connection pays for this task's state, so the stream lives in one place
        // of it: `run` borrows it (moved into `run`, it would be held twice), and `let else`
        // leaves no copy of the `Option` it came in (`if let` keeps that until the block
        // ends). The handshake's future, larger than what the connection keeps after it, is
        // boxed for its short life.
        let Some(mut ws) = Box::pin(connect(&socket, on_upgrade)).await else {
            socket.close_with(CloseReason::TransportClose, false);
            socket.finish();
            return;
        };
        run(&socket, &mut ws).await;
        socket.finish();
    });
    res
}

/// A WebSocket opened to upgrade a polling session.
pub(crate) fn upgrade<B>(socket: Arc<Socket>, req: Request<B>) -> Response<ResponseBody> {
    {
        let mut st = socket.lock();
        if st.session.closed().is_some() {
            return body::json_error(ErrorCode::BadRequest);
        }
        if st.ws_attached || st.session.transport() != Transport::Polling {
            // One WebSocket per session. As Node does, the second one is accepted and closed at
            // once, so a WebSocket client sees a close rather than a failed handshake.
            drop(st);
            tracing::debug!(sid = %socket.sid(), "second WebSocket for a session, closing it");
            return match accept(req) {
                Ok((res, on_upgrade)) => {
                    tokio::spawn(close_at_once(on_upgrade));
                    res
                }
                Err(code) => body::json_error(code),
            };
        }
        st.ws_attached = true;
    }
    let (res, on_upgrade) = match accept(req) {
        Ok(x) => x,
        Err(code) => {
            socket.lock().ws_attached = false;
            return body::json_error(code);
        }
    };
    tokio::spawn(async move {
        // As in `open`: the futures of the handshake and the probe are boxed, so that the
        // state the connection keeps while it runs is no larger than `run` needs.
        let Some(mut ws) = Box::pin(connect(&socket, on_upgrade)).await else {
            socket.lock().ws_attached = false;
            return;
        };
        if Box::pin(probe(&socket, &mut ws)).await {
            run(&socket, &mut ws).await;
            socket.finish();
        } else {
            {
                let mut st = socket.lock();
                st.session.abort_upgrade();
                st.ws_attached = false;
            }
            let _ = ws.close(None).await;
            let _ = tokio::time::timeout(CLOSE_LINGER, flush(&mut ws)).await;
            // What the client did not take belongs to this WebSocket only.
            let mut st = socket.lock();
            st.ws_out.pending = bytes::BytesMut::new();
            st.ws_out.stalled = false;
        }
    });
    res
}

/// Completes a WebSocket handshake and closes the connection with a closing handshake (for a
/// WebSocket that a session cannot take). Waits a second at most for the client's close.
async fn close_at_once(on_upgrade: OnUpgrade) {
    let Ok(upgraded) = on_upgrade.wait().await else {
        return;
    };
    let mut ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        if ws.close(None).await.is_ok() {
            // Read until the client's close arrives or the connection ends.
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Runs the probe exchange. Returns true once the session is on WebSocket.
async fn probe(socket: &Arc<Socket>, ws: &mut Ws) -> bool {
    let Some(timeout) = socket.shared().map(|s| s.config.upgrade_timeout) else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + timeout;
    // The session may end meanwhile (a heartbeat timeout on polling): the probe ends with it.
    let closed = socket.closed_wake.notified();
    tokio::pin!(closed);
    closed.as_mut().enable();
    loop {
        if socket.is_closed() {
            return false;
        }
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, ws.next()) => next,
            () = &mut closed => {
                tracing::debug!(sid = %socket.sid(), "session closed during the upgrade");
                return false;
            }
        };
        let frame = match next {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return false,
            Err(_) => {
                tracing::debug!(sid = %socket.sid(), "upgrade timed out");
                return false;
            }
        };
        let packet = match decode(socket.protocol(), frame) {
            Some(Ok(packet)) => packet,
            // A ping or a pong carries no packet (Node's `ws` answers pings below the protocol
            // too): send the pong tungstenite queued, and wait for the next frame.
            None => {
                if SinkExt::flush(ws).await.is_err() || flush(ws).await.is_err() {
                    return false;
                }
                continue;
            }
            Some(Err(_)) => return false,
        };
        let step = socket.lock().session.on_probe(&packet, now());
        tracing::trace!(sid = %socket.sid(), ?packet, ok = step.is_ok(), "upgrade step");
        match step {
            Ok(Some(reply)) => {
                if ws.send(encode(socket.protocol(), reply)).await.is_err()
                    || flush(ws).await.is_err()
                {
                    return false;
                }
                // Release a parked GET so the client can pause polling and send UPGRADE (only
                // a parked one: otherwise the NOOP would wait and go out on the WebSocket).
                let parked = socket.lock().poll_active;
                tracing::trace!(sid = %socket.sid(), parked, "probe answered");
                if parked {
                    socket.push_control(Packet::Noop);
                }
            }
            Ok(None) => {
                if socket.lock().session.transport() == Transport::WebSocket {
                    tracing::debug!(sid = %socket.sid(), "upgraded to WebSocket");
                    // A GET still parked returns at once (see `polling::get`).
                    socket.wake.notify_one();
                    if let Some(shared) = socket.shared() {
                        shared.handler.on_upgrade(socket);
                    }
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Turns a WebSocket frame into a packet. `None` for frames that carry none (ping, pong);
/// `Some(Err(reason))` when the session must end.
fn decode(version: ProtocolVersion, frame: WsMessage) -> Option<Result<Packet, CloseReason>> {
    match frame {
        WsMessage::Text(t) => Some(
            Str::from_utf8(t.into())
                .map_err(|_| CloseReason::TransportError)
                .and_then(|s| {
                    Packet::decode_text(version, s).map_err(|_| CloseReason::TransportError)
                }),
        ),
        WsMessage::Binary(b) => {
            Some(Packet::decode_binary(version, b).map_err(|_| CloseReason::TransportError))
        }
        WsMessage::Close(_) => Some(Err(CloseReason::TransportClose)),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => None,
    }
}

/// The probe's answer, written through tungstenite (the session's packets are not: see
/// [`super::ws_io`]).
fn encode(version: ProtocolVersion, packet: Packet) -> WsMessage {
    match packet {
        Packet::Binary(data) => WsMessage::Binary(Packet::binary_frame(version, &data)),
        other => WsMessage::text(other.to_text(version).as_str()),
    }
}

/// Writes what tungstenite queued (and nothing of the outbox).
async fn flush(ws: &mut Ws) -> std::io::Result<()> {
    write_all(ws, false).await
}

/// Writes what is pending and, with `take_outbox`, the outbox, until all is written.
async fn write_all(ws: &mut Ws, take_outbox: bool) -> std::io::Result<()> {
    std::future::poll_fn(|cx| match drain(ws.get_mut(), cx, take_outbox) {
        Ok(d) if d.done => Poll::Ready(Ok(())),
        Ok(_) => Poll::Pending,
        Err(e) => Poll::Ready(Err(e)),
    })
    .await
}

/// How long a closing session may take to hand its last packets and the closing handshake to
/// a client that does not read.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the rest of the outbox, then the closing handshake, for at most [`CLOSE_LINGER`].
async fn close(ws: &mut Ws) {
    let last = async {
        write_all(ws, true).await?;
        // Our close frame, or the answer to the client's: tungstenite queues either (the answer
        // when it read the client's close), and hands it to `WsIo` when flushed (which then
        // reports the connection closed); `flush` writes it to the socket.
        let _ = ws.close(None).await;
        let _ = SinkExt::flush(ws).await;
        flush(ws).await
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, last).await;
}

/// While the WebSocket task runs on plain TCP, senders write to the socket themselves; the
/// guard withdraws that (and drops what could not be written) however the task ends.
struct Direct<'a>(&'a Socket);

impl<'a> Direct<'a> {
    fn install(socket: &'a Socket, ws: &Ws) -> Direct<'a> {
        let tcp = ws.get_ref().tcp();
        if let Some(tcp) = tcp {
            socket.hint_tcp(tcp);
        }
        socket.lock().ws_out.direct = tcp.cloned();
        Direct(socket)
    }
}

impl Drop for Direct<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.ws_out.direct = None;
        st.ws_out.pending = bytes::BytesMut::new();
        st.ws_out.stalled = false;
    }
}

/// The sources the WebSocket task waits on besides its wake-up: the read side, the heartbeat
/// timer and the socket's writability. Each has a waker that raises its flag before waking the
/// task, so that the task knows which of them woke it: it polls its read side (tokio-tungstenite
/// and the TCP stream: a few hundred instructions even when there is nothing) and its timer only
/// when their flag is up. One registration of the task's waker serves all three.
struct Sources {
    task: AtomicWaker,
    raised: [AtomicBool; 3],
}

#[derive(Clone, Copy)]
enum Source {
    Read = 0,
    Clock = 1,
    Write = 2,
}

impl Sources {
    /// The sources, all raised (each is polled at least once), and their wakers.
    fn new() -> (Arc<Sources>, [Waker; 3]) {
        let sources = Arc::new(Sources {
            task: AtomicWaker::new(),
            raised: [const { AtomicBool::new(true) }; 3],
        });
        let waker = |source| {
            Waker::from(Arc::new(SourceWaker {
                sources: sources.clone(),
                source,
            }))
        };
        let wakers = [
            waker(Source::Read),
            waker(Source::Clock),
            waker(Source::Write),
        ];
        (sources, wakers)
    }

    fn raise(&self, source: Source) {
        self.raised[source as usize].store(true, Ordering::Release);
    }

    /// Lowers the flag of `source`; whether it was up.
    fn take(&self, source: Source) -> bool {
        self.raised[source as usize].swap(false, Ordering::AcqRel)
    }
}

struct SourceWaker {
    sources: Arc<Sources>,
    source: Source,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.sources.raise(self.source);
        self.sources.task.wake();
    }
}

enum Event {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Wake,
    Timer,
}

/// The life of a session on WebSocket: read frames, write what is queued, keep heartbeats.
///
/// The wake-up and the heartbeat timer live across iterations (a message in or out costs no
/// timer or waiter registration); the read side, the timer and the socket's writability are
/// polled only when their flag is up (see [`Sources`]); and while the task handles a frame or a timer it is
/// marked busy, so that what the handlers queue meanwhile does not wake it again: it writes
/// before it waits.
async fn run(socket: &Arc<Socket>, ws: &mut Ws) {
    let version = socket.protocol();
    let _direct = Direct::install(socket, ws);
    // The session's next deadline the timer is set to (`None`: none, the timer is far away).
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut timer_at: Option<tokio::time::Instant> = None;
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let woken = socket.wake.notified();
    tokio::pin!(woken);
    let (sources, [read_waker, clock_waker, write_waker]) = Sources::new();
    // The outbox's allocation goes once it is empty after the first write (the OPEN packet)
    // and after each heartbeat, so that an idle WebSocket keeps no queue; not after every
    // write, which would allocate it again for every burst a busy one queues.
    let mut trim = true;
    loop {
        // What is queued goes out now, as far as the socket takes it; if it takes less, the
        // write flag goes up once it is writable again.
        let drained = match drain(ws.get_mut(), &mut Context::from_waker(&write_waker), true) {
            Ok(drained) => drained,
            Err(e) => {
                tracing::debug!(sid = %socket.sid(), "WebSocket write failed: {e}");
                socket.close_with(CloseReason::TransportClose, false);
                return;
            }
        };
        if drained.closed {
            // Boxed: the closing handshake's future (a timeout around a flush, 264 bytes)
            // would otherwise be part of this loop's state, which every open connection holds.
            Box::pin(close(ws)).await;
            return;
        }
        if trim && drained.done {
            trim = false;
            let mut st = socket.lock();
            if st.outbox.is_empty() {
                st.outbox = std::collections::VecDeque::new();
            }
        }
        let deadline = drained.deadline.map(tokio::time::Instant::from_std);
        if deadline != timer_at {
            timer_at = deadline;
            timer.as_mut().reset(deadline.unwrap_or_else(far));
            sources.raise(Source::Clock);
        }
        let event = std::future::poll_fn(|cx| {
            sources.task.register(cx.waker());
            // The loop writes whatever the event, so a wake-up (new packets, or a writable
            // socket) needs no event of its own when something else happened too.
            let mut wake = woken.as_mut().poll(cx).is_ready();
            if wake {
                woken.set(socket.wake.notified());
            }
            wake |= sources.take(Source::Write);
            if sources.take(Source::Clock) {
                let mut clock_cx = Context::from_waker(&clock_waker);
                if timer.as_mut().poll(&mut clock_cx).is_ready() {
                    timer_at = None;
                    timer.as_mut().reset(far());
                    sources.raise(Source::Clock);
                    return Poll::Ready(Event::Timer);
                }
            }
            if sources.take(Source::Read) {
                let mut read_cx = Context::from_waker(&read_waker);
                if let Poll::Ready(frame) = ws.poll_next_unpin(&mut read_cx) {
                    // More frames may be buffered already: read again next time.
                    sources.raise(Source::Read);
                    return Poll::Ready(Event::Frame(frame));
                }
                // tungstenite answered a ping or a close: that must go out too.
                wake |= ws.get_mut().take_wrote();
            }
            if wake {
                Poll::Ready(Event::Wake)
            } else {
                Poll::Pending
            }
        })
        .await;
        match event {
            Event::Wake => {}
            Event::Timer => {
                trim = true;
                let action = {
                    let mut st = socket.lock();
                    st.writer_busy = true;
                    st.session.on_timer(now())
                };
                match action {
                    Some(TimerAction::SendPing) => socket.push_control(Packet::Ping(Str::new())),
                    Some(TimerAction::Close(reason)) => socket.close_with(reason, false),
                    Some(TimerAction::AbortUpgrade) | None => {}
                }
            }
            Event::Frame(Some(Ok(frame))) => match decode(version, frame) {
                None => {}
                Some(Ok(packet)) => {
                    let reaction = {
                        let mut st = socket.lock();
                        st.writer_busy = true;
                        st.session.on_packet(packet, now())
                    };
                    react(socket, reaction);
                }
                Some(Err(reason)) => {
                    if reason == CloseReason::TransportError {
                        tracing::debug!(sid = %socket.sid(), "bad packet on WebSocket");
                    }
                    socket.close_with(reason, false);
                }
            },
            Event::Frame(Some(Err(e))) => {
                tracing::debug!(sid = %socket.sid(), "WebSocket error: {e}");
                let reason = match e {
                    tokio_tungstenite::tungstenite::Error::Capacity(_)
                    | tokio_tungstenite::tungstenite::Error::Protocol(_)
                    | tokio_tungstenite::tungstenite::Error::Utf8(_) => CloseReason::TransportError,
                    _ => CloseReason::TransportClose,
                };
                socket.close_with(reason, false);
                return;
            }
            Event::Frame(None) => {
                socket.close_with(CloseReason::TransportClose, false);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{CloseReason, Engine, EngineConfig, EngineHandler, EngineService, Message, Socket};
    use futures_util::{SinkExt, StreamExt};
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::Message as Frame;
    use tokio_tungstenite::WebSocketStream;
    use tower::ServiceExt;

    /// Counts upgrades.
    #[derive(Default)]
    struct Upgrades(AtomicUsize);

    impl EngineHandler for Upgrades {
        fn on_open(&self, _socket: &Arc<Socket>) {}
        fn on_message(&self, _socket: &Arc<Socket>, _msg: Message) {}
        fn on_close(&self, _socket: &Arc<Socket>, _reason: CloseReason) {}
        fn on_upgrade(&self, _socket: &Arc<Socket>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn next(ws: &mut WebSocketStream<DuplexStream>) -> Frame {
        tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("a valid frame")
    }

    /// Found by the `websocket_read` fuzz target (fuzz/seeds/websocket_read/
    /// v4_upgrade_with_pings): a WebSocket ping during the probe made the upgrade fail. Pings
    /// carry no packet: the probe answers them and goes on, as Node's engine.io does.
    #[tokio::test(start_paused = true)]
    async fn pings_during_the_probe_are_answered_and_the_upgrade_completes() {
        let handler = Arc::new(Upgrades::default());
        let engine = Engine::new(EngineConfig::default(), handler.clone());
        let svc = EngineService::new(engine.clone());
        let req = http::Request::get("/engine.io/?EIO=4&transport=polling")
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .expect("a request");
        let Ok(res) = svc.clone().oneshot(req).await;
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        let open: serde_json::Value = serde_json::from_slice(&body[1..]).expect("OPEN");
        let sid = open["sid"].as_str().expect("a sid").to_owned();

        let (client, server) = tokio::io::duplex(64 * 1024);
        let hyper_svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(server), hyper_svc)
                .with_upgrades(),
        );
        let url = format!("ws://localhost/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let (mut ws, _) = tokio_tungstenite::client_async(url, client)
            .await
            .expect("the WebSocket handshake");

        ws.send(Frame::Ping("before".into())).await.expect("sent");
        assert_eq!(next(&mut ws).await, Frame::Pong("before".into()));
        ws.send(Frame::text("2probe")).await.expect("sent");
        assert_eq!(next(&mut ws).await, Frame::text("3probe"));
        ws.send(Frame::Ping("between".into())).await.expect("sent");
        assert_eq!(next(&mut ws).await, Frame::Pong("between".into()));
        ws.send(Frame::text("5")).await.expect("sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(handler.0.load(Ordering::SeqCst), 1, "not upgraded");
        let socket = engine
            .socket(crate::Sid::parse(&sid).expect("a sid"))
            .expect("the session");
        assert_eq!(socket.transport(), crate::TransportKind::WebSocket);
    }
}
