//! WebSocket: a direct session, or the upgrade of a polling session (`2probe`, `3probe`, `5`).
//!
//! One task per WebSocket reads frames, drains the session's outbox (all queued packets, then one
//! flush: writes are coalesced) and runs the heartbeat timer.

use crate::body::{self, ResponseBody};
use crate::engine::now;
use crate::socket::Socket;
use crate::transport::polling::react;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use socketlet_engineio_proto::session::{CloseReason, TimerAction, Transport};
use socketlet_engineio_proto::{ErrorCode, Packet, ProtocolVersion, Str};
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

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
fn accept<B>(
    mut req: Request<B>,
) -> Result<(Response<ResponseBody>, hyper::upgrade::OnUpgrade), ErrorCode> {
    if !is_upgrade_request(req.headers()) {
        return Err(ErrorCode::BadRequest);
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .ok_or(ErrorCode::BadRequest)?;
    let accept = HeaderValue::from_str(&key).map_err(|_| ErrorCode::BadRequest)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut res = body::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok((res, on_upgrade))
}

async fn connect(socket: &Socket, on_upgrade: hyper::upgrade::OnUpgrade) -> Option<Ws> {
    let upgraded = match on_upgrade.await {
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
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

/// A new session whose first transport is WebSocket.
pub(crate) fn open<B>(socket: Arc<Socket>, req: Request<B>) -> Response<ResponseBody> {
    let (res, on_upgrade) = match accept(req) {
        Ok(x) => x,
        Err(code) => {
            socket.close_with(CloseReason::TransportError, false);
            socket.finish();
            return body::json_error(code);
        }
    };
    socket.lock().ws_attached = true;
    if let Some(shared) = socket.shared() {
        shared.handler.on_open(&socket);
    }
    tokio::spawn(async move {
        // The stream lives in one place of the task (`run` borrows it): moved into `run`, it
        // would be held twice in the task's state, which every idle connection pays for.
        if let Some(mut ws) = connect(&socket, on_upgrade).await {
            run(&socket, &mut ws).await;
        } else {
            socket.close_with(CloseReason::TransportClose, false);
        }
        socket.finish();
    });
    res
}

/// A WebSocket opened to upgrade a polling session.
pub(crate) fn upgrade<B>(socket: Arc<Socket>, req: Request<B>) -> Response<ResponseBody> {
    {
        let mut st = socket.lock();
        if st.ws_attached
            || st.session.transport() != Transport::Polling
            || st.session.closed().is_some()
        {
            return body::json_error(ErrorCode::BadRequest);
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
        let Some(mut ws) = connect(&socket, on_upgrade).await else {
            socket.lock().ws_attached = false;
            return;
        };
        if probe(&socket, &mut ws).await {
            run(&socket, &mut ws).await;
            socket.finish();
        } else {
            {
                let mut st = socket.lock();
                st.session.abort_upgrade();
                st.ws_attached = false;
            }
            let _ = ws.close(None).await;
        }
    });
    res
}

/// Runs the probe exchange. Returns true once the session is on WebSocket.
async fn probe(socket: &Arc<Socket>, ws: &mut Ws) -> bool {
    let Some(timeout) = socket.shared().map(|s| s.config.upgrade_timeout) else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return false,
            Err(_) => {
                tracing::debug!(sid = %socket.sid(), "upgrade timed out");
                return false;
            }
        };
        let Some(Ok(packet)) = decode(socket.protocol(), frame) else {
            return false;
        };
        let step = socket.lock().session.on_probe(&packet, now());
        tracing::trace!(sid = %socket.sid(), ?packet, ok = step.is_ok(), "upgrade step");
        match step {
            Ok(Some(reply)) => {
                if ws.send(encode(socket.protocol(), reply)).await.is_err() {
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

fn encode(version: ProtocolVersion, packet: Packet) -> WsMessage {
    match packet {
        Packet::Binary(data) => WsMessage::Binary(Packet::binary_frame(version, &data)),
        Packet::Message(text) => WsMessage::Text(framed_message(text)),
        other => WsMessage::text(other.to_text(version).as_str()),
    }
}

/// Texts up to this size are kept framed for the next receiver (see [`framed_message`]).
const FRAMED_CACHE_MAX: usize = 64 * 1024;

thread_local! {
    /// The last MESSAGE text framed on this thread, with its frame.
    static LAST_FRAMED: RefCell<Option<(Str, Utf8Bytes)>> = const { RefCell::new(None) };
}

/// `4<text>`, the frame of a MESSAGE packet. A broadcast hands every receiver the same text
/// (one shared buffer), and their tasks run one after the other on a thread: the frame made for
/// the first is kept and shared by the others instead of being built again per receiver. The
/// kept text is held, so its buffer cannot be freed and reused while the pointer is compared.
fn framed_message(text: Str) -> Utf8Bytes {
    let frame = |text: &Str| {
        let mut s = String::with_capacity(text.len() + 1);
        s.push('4');
        s.push_str(text);
        Utf8Bytes::from(s)
    };
    if text.len() > FRAMED_CACHE_MAX {
        return frame(&text);
    }
    LAST_FRAMED.with(|cell| {
        let Ok(mut last) = cell.try_borrow_mut() else {
            return frame(&text);
        };
        if let Some((kept, framed)) = last.as_ref() {
            if kept.as_bytes().as_ptr() == text.as_bytes().as_ptr() && kept.len() == text.len() {
                return framed.clone();
            }
        }
        let framed = frame(&text);
        *last = Some((text, framed.clone()));
        framed
    })
}

/// A waker that raises its flag before waking the task, so that the task knows which of its
/// sources woke it. The WebSocket task polls its read side (tokio-tungstenite, hyper's upgraded
/// stream, the TCP stream: a few hundred instructions even when there is nothing) and its timer
/// only when their flag is up, not on every wake-up for writing: a broadcast wakes every
/// receiver once, for writing only.
struct Flag {
    raised: AtomicBool,
    task: AtomicWaker,
}

impl Flag {
    /// A flag, raised (the source is polled at least once), and the waker that raises it.
    fn new() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag {
            raised: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(flag.clone());
        (flag, waker)
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
    }

    /// Lowers the flag; whether it was up.
    fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
        self.task.wake();
    }
}

enum Event {
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Wake,
    Timer,
}

/// The life of a session on WebSocket: read frames, write the outbox, keep heartbeats.
///
/// The wake-up and the heartbeat timer live across iterations (a message in or out costs no
/// timer or waiter registration); the read side is polled only when it said it is ready (see
/// [`ReadWaker`]); and while the task handles a frame or a timer it is marked busy, so that what
/// the handlers queue meanwhile does not wake it again: it drains the outbox before it waits.
async fn run(socket: &Arc<Socket>, ws: &mut Ws) {
    let version = socket.protocol();
    // The session's next deadline the timer is set to (`None`: none, the timer is far away).
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut timer_at: Option<tokio::time::Instant> = None;
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let woken = socket.wake.notified();
    tokio::pin!(woken);
    let (read, read_waker) = Flag::new();
    let (clock, clock_waker) = Flag::new();
    loop {
        // Everything queued goes out with one flush (writes are coalesced); the packets are
        // taken one at a time, which costs a lock each but no buffer.
        let mut wrote = false;
        let (deadline, closed) = loop {
            let next = {
                let mut st = socket.lock();
                st.writer_busy = false;
                match st.outbox.pop_front() {
                    Some(packet) => Ok(packet),
                    None => Err((st.session.next_deadline(), st.session.closed().is_some())),
                }
            };
            match next {
                Ok(packet) => {
                    if ws.feed(encode(version, packet)).await.is_err() {
                        socket.close_with(CloseReason::TransportClose, false);
                        return;
                    }
                    wrote = true;
                }
                Err(state) => break state,
            }
        };
        if wrote && ws.flush().await.is_err() {
            socket.close_with(CloseReason::TransportClose, false);
            return;
        }
        if closed {
            let _ = ws.close(None).await;
            return;
        }
        let deadline = deadline.map(tokio::time::Instant::from_std);
        if deadline != timer_at {
            timer_at = deadline;
            timer.as_mut().reset(deadline.unwrap_or_else(far));
            clock.raise();
        }
        let event = std::future::poll_fn(|cx| {
            read.task.register(cx.waker());
            clock.task.register(cx.waker());
            // The loop drains the outbox whatever the event, so a wake-up needs no event of
            // its own when something else happened too.
            let wake = woken.as_mut().poll(cx).is_ready();
            if wake {
                woken.set(socket.wake.notified());
            }
            if clock.take() {
                let mut clock_cx = Context::from_waker(&clock_waker);
                if timer.as_mut().poll(&mut clock_cx).is_ready() {
                    timer_at = None;
                    timer.as_mut().reset(far());
                    clock.raise();
                    return Poll::Ready(Event::Timer);
                }
            }
            if read.take() {
                let mut read_cx = Context::from_waker(&read_waker);
                if let Poll::Ready(frame) = ws.poll_next_unpin(&mut read_cx) {
                    // More frames may be buffered already: read again next time.
                    read.raise();
                    return Poll::Ready(Event::Frame(frame));
                }
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
    use super::*;

    #[test]
    fn receivers_of_one_text_share_its_frame() {
        let text = Str::from(String::from(r#"2["news","hi"]"#));
        let first = framed_message(text.clone());
        let second = framed_message(text.clone());
        assert_eq!(first.as_str(), r#"42["news","hi"]"#);
        assert_eq!(
            first.as_str().as_ptr(),
            second.as_str().as_ptr(),
            "framed twice"
        );
        // A sub-slice starting at the same byte (the kept text) is not the same text.
        let prefix = text.slice(0..3).unwrap();
        assert_eq!(framed_message(prefix).as_str(), "42[\"");
        // Equal content in another buffer is another text: framed anew, same bytes.
        let kept = framed_message(text.clone());
        let other = Str::from(String::from(r#"2["news","hi"]"#));
        let third = framed_message(other);
        assert_ne!(kept.as_str().as_ptr(), third.as_str().as_ptr());
        assert_eq!(third.as_str(), first.as_str());
    }
}
