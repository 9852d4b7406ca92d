//! HTTP long-polling: a GET waits for packets, a POST delivers packets, one of each at a time.
//!
//! A polling session has a small timer task for its heartbeats; it hands over to the WebSocket
//! task when the session upgrades.

use crate::body::{self, Encoding, ResponseBody};
use crate::engine::{now, Shared};
use crate::query::Query;
use crate::socket::{Message, Socket};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use socketlet_engineio_proto::payload::{self, Framing};
use socketlet_engineio_proto::session::{CloseReason, Reaction, TimerAction, Transport};
use socketlet_engineio_proto::{ErrorCode, Packet, ProtocolVersion, Str};
use std::sync::Arc;

/// Clears a flag of the session's state when the request that set it ends, however it ends.
///
/// A GET dropped before it was answered means the client went away while it was parked (it
/// aborted the request, or its connection closed): the session closes, as in Node ("poll
/// connection closed prematurely"). A later request for it gets "Session ID unknown".
struct ActiveGuard<'a> {
    socket: &'a Arc<Socket>,
    get: bool,
    /// The request got its answer.
    answered: bool,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        let abandoned = {
            let mut st = self.socket.lock();
            if self.get {
                st.poll_active = false;
            } else {
                st.post_active = false;
            }
            self.get && !self.answered && st.session.closed().is_none()
        };
        if abandoned {
            tracing::debug!(sid = %self.socket.sid(), "parked GET abandoned by the client");
            self.socket.close_with(CloseReason::TransportError, false);
        }
    }
}

/// Closes a session whose heartbeat deadline has passed, if the timer task has not done it yet
/// (a request may arrive first); whether it was so.
fn expired(socket: &Arc<Socket>) -> bool {
    let expired = socket.lock().session.heartbeat_expired(now());
    if expired {
        socket.close_with(CloseReason::PingTimeout, false);
    }
    expired
}

/// Protocol error on a polling request: close the session and answer 400.
fn fail(socket: &Arc<Socket>, why: &str) -> Response<ResponseBody> {
    tracing::debug!(sid = %socket.sid(), why, "polling protocol error");
    socket.close_with(CloseReason::TransportError, false);
    body::json_error(ErrorCode::BadRequest)
}

pub(crate) fn jsonp_index(query: &Query<'_>) -> Result<Option<u32>, ()> {
    match &query.jsonp {
        None => Ok(None),
        Some(j) if j.len() <= 9 && !j.is_empty() && j.bytes().all(|b| b.is_ascii_digit()) => {
            j.parse().map(Some).map_err(|_| ())
        }
        Some(_) => Err(()),
    }
}

/// Answers a GET: waits until there is something to send, then sends up to
/// `max_packets_per_poll` packets. Of its request it keeps the JSONP index (from
/// [`jsonp_index`]) and the compression the client accepts: the request itself is let go
/// while the GET is parked.
pub(crate) async fn get(
    socket: Arc<Socket>,
    jsonp: Result<Option<u32>, ()>,
    encoding: Option<Encoding>,
) -> Response<ResponseBody> {
    let Some(shared) = socket.shared() else {
        return body::json_error(ErrorCode::UnknownSid);
    };
    let Ok(jsonp) = jsonp else {
        return fail(&socket, "bad JSONP index");
    };
    if expired(&socket) {
        return body::json_error(ErrorCode::UnknownSid);
    }
    {
        let mut st = socket.lock();
        if st.session.transport() == Transport::WebSocket {
            return body::json_error(ErrorCode::BadRequest);
        }
        if st.poll_active {
            drop(st);
            return fail(&socket, "overlapping GET");
        }
        st.poll_active = true;
    }
    let mut guard = ActiveGuard {
        socket: &socket,
        get: true,
        answered: false,
    };
    let max = shared.config.max_packets_per_poll;
    let (packets, done) = loop {
        let woken = socket.wake.notified();
        {
            let mut st = socket.lock();
            let closed = st.session.closed().is_some();
            if st.session.transport() == Transport::WebSocket {
                // Upgraded while this GET was parked: release it; the WebSocket owns the outbox.
                break (vec![Packet::Noop], false);
            }
            if !st.outbox.is_empty() {
                let packets = take_batch(&mut st.outbox, max, socket.protocol());
                break (packets, closed && st.outbox.is_empty());
            }
            if let Some(reason) = st.session.closed() {
                // A client that closed gets a NOOP on the GET it left parked (Node does the
                // same); any other close is announced.
                let last = if reason == CloseReason::ClientClose {
                    Packet::Noop
                } else {
                    Packet::Close
                };
                break (vec![last], true);
            }
            if st.session.transport() == Transport::Upgrading {
                // The client pauses polling and sends UPGRADE only once this GET returns: never
                // park a GET while a probe is under way.
                break (vec![Packet::Noop], false);
            }
        }
        woken.await;
    };
    guard.answered = true;
    drop(guard);
    tracing::trace!(sid = %socket.sid(), packets = packets.len(), "GET answered");
    if done {
        socket.finish();
    }

    let version = socket.protocol();
    let framing = if jsonp.is_some() {
        Framing::V3Text
    } else {
        payload::framing_for(version, socket.base64(), &packets)
    };
    let encoded = payload::encode(framing, &packets);
    let threshold = shared.config.compression_threshold;
    if let Some(index) = jsonp {
        let text = std::str::from_utf8(&encoded.body).unwrap_or_default();
        let script = payload::jsonp_wrap(index, text);
        return body::payload(
            Bytes::from(script),
            const { HeaderValue::from_static("text/javascript; charset=UTF-8") },
            encoding,
            threshold,
        );
    }
    let content_type = if encoded.binary {
        const { HeaderValue::from_static("application/octet-stream") }
    } else {
        const { HeaderValue::from_static("text/plain; charset=UTF-8") }
    };
    body::payload(encoded.body, content_type, encoding, threshold)
}

/// Answers a POST: reads the body (bounded by `max_payload`), decodes its packets and feeds them
/// to the session in order. `jsonp`: the request named a JSONP index (`j`), so a v3 body is a
/// JSONP form.
pub(crate) async fn post<B>(
    socket: Arc<Socket>,
    jsonp: bool,
    req: Request<B>,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(shared) = socket.shared() else {
        return body::json_error(ErrorCode::UnknownSid);
    };
    if expired(&socket) {
        return body::json_error(ErrorCode::UnknownSid);
    }
    {
        let mut st = socket.lock();
        if st.session.transport() == Transport::WebSocket || st.session.closed().is_some() {
            return body::json_error(ErrorCode::BadRequest);
        }
        if st.post_active {
            drop(st);
            return fail(&socket, "overlapping POST");
        }
        st.post_active = true;
    }
    let _guard = ActiveGuard {
        socket: &socket,
        get: false,
        answered: false,
    };
    let max = shared.config.max_payload;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        fail(&socket, "payload too large");
        return body::text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
    }
    let binary_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    let data = match read_body(&socket, &shared, req.into_body()).await {
        Ok(data) => data,
        Err(BodyError::TooLarge) => {
            fail(&socket, "payload too large");
            return body::text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
        }
        Err(BodyError::TooSlow) => {
            fail(&socket, "body too slow");
            return body::text(StatusCode::REQUEST_TIMEOUT, "Request Timeout");
        }
        Err(BodyError::NoMemory) => {
            tracing::warn!(
                sid = %socket.sid(),
                "max_body_memory reached by the POST bodies being read, refusing one"
            );
            fail(&socket, "no memory for the body");
            return body::text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        // The session ended while its body was coming: nothing it holds is used.
        Err(BodyError::SessionClosed) => return body::json_error(ErrorCode::UnknownSid),
        // The client went away mid-body: nothing to answer.
        Err(BodyError::Broken) => {
            fail(&socket, "body broken off");
            return body::json_error(ErrorCode::BadRequest);
        }
    };
    if socket.is_closed() {
        return body::json_error(ErrorCode::UnknownSid);
    }
    let data = if jsonp && socket.protocol() == ProtocolVersion::V3 {
        match payload::decode_jsonp_form(&data) {
            Ok(d) => d,
            Err(e) => return fail(&socket, &e.to_string()),
        }
    } else {
        data
    };
    let packets = match payload::decode(
        socket.protocol(),
        data,
        binary_body,
        shared.config.max_buffered_packets,
    ) {
        Ok(p) => p,
        Err(e) => return fail(&socket, &e.to_string()),
    };
    tracing::trace!(sid = %socket.sid(), packets = packets.len(), "POST received");
    for packet in packets {
        let reaction = socket.lock().session.on_packet(packet, now());
        if !react(&socket, reaction) {
            break;
        }
    }
    body::text(StatusCode::OK, "ok")
}

/// Why a POST body was not read whole.
enum BodyError {
    /// Over `max_payload`.
    TooLarge,
    /// Not complete within `max_body_time`.
    TooSlow,
    /// The bodies being read hold `max_body_memory` already.
    NoMemory,
    /// The session closed meanwhile.
    SessionClosed,
    /// The connection failed or the body was malformed.
    Broken,
}

/// Bytes of a body counted in the engine's `body_memory` while it is read; given back however
/// the read ends.
struct Held<'a> {
    memory: &'a std::sync::atomic::AtomicUsize,
    bytes: usize,
}

impl Held<'_> {
    /// Counts `n` more bytes, unless that would go past `limit`.
    fn take(&mut self, n: usize, limit: usize) -> bool {
        use std::sync::atomic::Ordering;
        let grabbed = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&total| total <= limit)
            });
        if grabbed.is_ok() {
            self.bytes += n;
        }
        grabbed.is_ok()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.memory
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Reads a POST body whole: at most `max_payload` bytes, within `max_body_time`, counted in the
/// engine's `body_memory` while it is read, and abandoned as soon as the session closes.
async fn read_body<B>(socket: &Socket, shared: &Shared, body: B) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
{
    let max = usize::try_from(shared.config.max_payload).unwrap_or(usize::MAX);
    let deadline = tokio::time::Instant::now() + shared.config.max_body_time;
    let closed = socket.closed_wake.notified();
    tokio::pin!(closed, body);
    closed.as_mut().enable();
    if socket.is_closed() {
        return Err(BodyError::SessionClosed);
    }
    let mut held = Held {
        memory: &shared.body_memory,
        bytes: 0,
    };
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = &mut closed => return Err(BodyError::SessionClosed),
            _ = tokio::time::sleep_until(deadline) => return Err(BodyError::TooSlow),
        };
        let Some(frame) = frame else { break };
        let Ok(frame) = frame else {
            return Err(BodyError::Broken);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if held.bytes + data.len() > max {
            return Err(BodyError::TooLarge);
        }
        if !held.take(data.len(), shared.config.max_body_memory) {
            return Err(BodyError::NoMemory);
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.remove(0),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(held.bytes);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    })
}

/// Takes the packets for one polling response: at most `max`.
///
/// For v3, a packet holding a character outside the Basic Multilingual Plane ends the response:
/// v3 lengths count UTF-16 units (as the JavaScript clients do) but python-engineio 3.x counts
/// code points, and the two only agree on where the payload ends when such a packet is last.
fn take_batch(
    outbox: &mut std::collections::VecDeque<Packet>,
    max: usize,
    version: ProtocolVersion,
) -> Vec<Packet> {
    let mut packets = Vec::with_capacity(outbox.len().min(max));
    while packets.len() < max {
        let Some(packet) = outbox.pop_front() else {
            break;
        };
        let astral = version == ProtocolVersion::V3
            && matches!(&packet, Packet::Message(s) if s.chars().any(|c| c > '\u{ffff}'));
        packets.push(packet);
        if astral {
            break;
        }
    }
    packets
}

/// Carries out what the state machine asked for after a client packet. Returns false once the
/// session is closed.
pub(crate) fn react(socket: &Arc<Socket>, reaction: Reaction) -> bool {
    match reaction {
        Reaction::None => true,
        Reaction::Deliver(packet) => {
            let msg = match packet {
                Packet::Message(s) => Message::Text(s),
                Packet::Binary(b) => Message::Binary(b),
                _ => return true,
            };
            if let Some(shared) = socket.shared() {
                shared.handler.on_message(socket, msg);
            }
            true
        }
        Reaction::Reply(packet) => {
            socket.push_control(packet);
            true
        }
        Reaction::Close(reason) => {
            socket.close_with(reason, false);
            false
        }
    }
}

/// Runs the heartbeats of a polling session until it closes or moves to WebSocket.
pub(crate) fn start_timer(socket: Arc<Socket>) {
    tokio::spawn(async move {
        loop {
            let closed = socket.closed_wake.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            let deadline = {
                let st = socket.lock();
                if st.session.transport() == Transport::WebSocket {
                    return;
                }
                if st.session.closed().is_some() {
                    break;
                }
                st.session.next_deadline()
            };
            match deadline {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(d)) => {}
                        _ = &mut closed => {}
                    }
                }
                None => closed.await,
            }
            let action = {
                let mut st = socket.lock();
                if st.session.transport() == Transport::WebSocket {
                    return;
                }
                st.session.on_timer(now())
            };
            match action {
                Some(TimerAction::SendPing) => socket.push_control(Packet::Ping(Str::new())),
                Some(TimerAction::Close(reason)) => socket.close_with(reason, false),
                Some(TimerAction::AbortUpgrade) | None => {}
            }
        }
        // Closed. Anything still queued (a DISCONNECT, a CLOSE) waits for the client's next GET,
        // for a while.
        let pending = !socket.lock().outbox.is_empty();
        if pending {
            if let Some(shared) = socket.shared() {
                tokio::time::sleep(shared.config.ping_timeout).await;
            }
        }
        socket.finish();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn msg(s: &str) -> Packet {
        Packet::Message(Str::from(s.to_owned()))
    }

    #[test]
    fn batches_are_bounded_and_v3_ends_them_after_astral_text() {
        let mut q: VecDeque<Packet> = (0..20).map(|i| msg(&i.to_string())).collect();
        assert_eq!(take_batch(&mut q, 16, ProtocolVersion::V4).len(), 16);
        assert_eq!(q.len(), 4);

        let mut q: VecDeque<Packet> = [msg("a"), msg("b 😀"), msg("c"), msg("é")].into();
        assert_eq!(
            take_batch(&mut q, 16, ProtocolVersion::V3),
            vec![msg("a"), msg("b 😀")]
        );
        assert_eq!(
            take_batch(&mut q, 16, ProtocolVersion::V3),
            vec![msg("c"), msg("é")]
        );

        let mut q: VecDeque<Packet> = [msg("b 😀"), msg("c")].into();
        assert_eq!(
            take_batch(&mut q, 16, ProtocolVersion::V4).len(),
            2,
            "v4 is unaffected"
        );
    }
}
