//! One Engine.IO session as the layer above sees it: send messages, read its request, close it.
//!
//! All outgoing packets go through one bounded queue (the outbox), whatever the transport: a
//! polling GET drains it, or the WebSocket task does. On a WebSocket over plain TCP, a packet
//! sent while the outbox is empty skips it and is written at once by the sender (see
//! [`crate::transport::ws_io`]). The state machine of
//! [`socketlet_engineio_proto::session`] sits behind the same lock, so heartbeats, upgrades and
//! sends never disagree about which transport is live.

use crate::engine::Shared;
use crate::error::SendError;
use crate::headers::Headers;
use crate::transport::ws_io::WsOut;
use bytes::Bytes;
use http::Uri;
use socketlet_engineio_proto::session::{CloseReason, Session, Transport};
use socketlet_engineio_proto::{Packet, ProtocolVersion, Str};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use crate::sid::Sid;

/// A message between the engine and the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Str),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    pub(crate) fn into_packet(self) -> Packet {
        match self {
            Message::Text(s) => Packet::Message(s),
            Message::Binary(b) => Packet::Binary(b),
        }
    }
}

/// The transport a session is using, as the layer above sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling (also while an upgrade is being probed).
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// `"polling"` or `"websocket"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// The handshake request of a session, kept for the layer above (auth from headers or query,
/// origin checks, logging).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The handshake's URI, query included.
    pub uri: Uri,
    /// The handshake's headers (kept compact: see [`Headers`]).
    pub headers: Headers,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
    /// When the handshake came.
    pub issued: std::time::SystemTime,
}

impl RequestInfo {
    /// The parts of `req` a session keeps, copied into one buffer of their own. A clone would
    /// do, but hyper's URI and header values are slices of its connection's read buffer (8 KiB):
    /// any of them would keep that whole buffer alive as long as the session lives.
    pub(crate) fn detached<B>(req: &http::Request<B>) -> RequestInfo {
        let uri_text = req.uri().to_string();
        let total = uri_text.len()
            + req
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len())
                .sum::<usize>();
        let mut buf = bytes::BytesMut::with_capacity(total);
        buf.extend_from_slice(uri_text.as_bytes());
        let spans = Headers::append_to(req.headers(), &mut buf);
        let buf = buf.freeze();
        let uri = Uri::from_maybe_shared(buf.slice(..uri_text.len())).unwrap_or_default();
        RequestInfo {
            uri,
            headers: Headers::from_spans(buf, &spans),
            remote_addr: req.extensions().get::<RemoteAddr>().map(|a| a.0),
            issued: std::time::SystemTime::now(),
        }
    }

    /// The client's address: the peer's, or, when the peer is one of `trusted` proxies, the
    /// last address in `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
    /// the address it got the request from, so the addresses left of the first untrusted one
    /// from the right are the client's own claims).
    pub fn client_address(&self, trusted: &crate::TrustedProxies) -> Option<std::net::IpAddr> {
        let peer = self.remote_addr.map(|a| a.ip())?;
        if !trusted.trusts(Some(peer)) {
            return Some(peer);
        }
        let forwarded: Vec<std::net::IpAddr> = self
            .headers
            .get_all("x-forwarded-for")
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let mut client = peer;
        for addr in forwarded.iter().rev() {
            client = *addr;
            if !trusted.trusts(Some(*addr)) {
                break;
            }
        }
        Some(client)
    }
}

/// The address of the peer, put in request extensions by [`crate::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// `repr(C)`, in the order a send reads it (see [`Socket`]): the outbox and the WebSocket
/// output, the flags, then the session, whose `closed` comes first in its own layout.
#[repr(C)]
pub(crate) struct State {
    pub(crate) outbox: VecDeque<Packet>,
    /// Framed bytes for the WebSocket, and whether senders may write to it themselves.
    pub(crate) ws_out: WsOut,
    /// A polling GET is waiting for packets.
    pub(crate) poll_active: bool,
    /// A polling POST is being read.
    pub(crate) post_active: bool,
    /// A WebSocket is attached (probing or live); a second one is refused.
    pub(crate) ws_attached: bool,
    /// [`Socket::close_with`] has run. Not the same as `session.closed()`: the state machine
    /// marks itself closed on a ping timeout or a CLOSE packet, and the engine must still wake
    /// the waiters and tell the handler.
    close_handled: bool,
    /// The WebSocket task is handling something and drains the outbox before it waits again:
    /// packets queued meanwhile need no wake-up (an inline handler's answer would otherwise
    /// wake the very task that is running it, for one useless extra poll).
    pub(crate) writer_busy: bool,
    /// The protocol state machine.
    pub(crate) session: Session,
}

impl State {
    /// Queues a packet; returns whether the writer must be woken.
    fn push(&mut self, packet: Packet) -> bool {
        self.outbox.push_back(packet);
        !self.writer_busy && !self.ws_out.stalled
    }
}

/// One Engine.IO session. Shared as `Arc<Socket>`; every method takes `&self`.
///
/// `repr(C)` puts what every send reads (the limit, the lock, and `State` up to the session's
/// `closed` and version) on the first two cache lines of the allocation: a broadcast to 10k
/// idle sockets finds each one cold, and a miss per line is a good part of its cost outside
/// the kernel.
#[repr(C)]
pub struct Socket {
    max_buffered: usize,
    pub(crate) state: Mutex<State>,
    /// The TCP stream of the session's WebSocket, once it has one, for [`Socket::warm`] only:
    /// readable without the lock, and weak, so that it never keeps the connection open.
    /// Senders use the one in [`State`].
    tcp_hint: OnceLock<Weak<TcpStream>>,
    version: ProtocolVersion,
    /// Engine.IO v3: binary packets go base64-encoded in polling responses (`b64=1` or JSONP
    /// at the handshake; fixed for the session's life, as in Node).
    base64: bool,
    sid: Sid,
    request: RequestInfo,
    /// Wakes whoever writes to the client (a pending GET or the WebSocket task).
    pub(crate) wake: Notify,
    /// Wakes everything waiting on the session when it closes.
    pub(crate) closed_wake: Notify,
    shared: Weak<Shared>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("sid", &self.sid)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(
        sid: Sid,
        session: Session,
        request: RequestInfo,
        base64: bool,
        max_buffered: usize,
        shared: Weak<Shared>,
    ) -> Socket {
        Socket {
            sid,
            version: session.version(),
            base64,
            request,
            max_buffered,
            tcp_hint: OnceLock::new(),
            state: Mutex::new(State {
                session,
                outbox: VecDeque::new(),
                poll_active: false,
                post_active: false,
                ws_attached: false,
                close_handled: false,
                writer_busy: false,
                ws_out: WsOut::default(),
            }),
            wake: Notify::new(),
            closed_wake: Notify::new(),
            shared,
        }
    }

    /// The session id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// The Engine.IO protocol generation of the client.
    pub fn protocol(&self) -> ProtocolVersion {
        self.version
    }

    /// Whether polling responses carry binary packets base64-encoded (Engine.IO v3 clients
    /// that asked for it at the handshake; v4 always does).
    pub(crate) fn base64(&self) -> bool {
        self.base64
    }

    /// The handshake request.
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        match self.lock().session.transport() {
            Transport::WebSocket => TransportKind::WebSocket,
            Transport::Polling | Transport::Upgrading => TransportKind::Polling,
        }
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.lock().session.closed().is_some()
    }

    /// Reads the first bytes of the session, which hold its lock and the state a send reads
    /// first, and those of its TCP stream, and does nothing with them: a caller about to send
    /// to many sessions calls it a few sessions ahead, so that their cold cache lines load side
    /// by side rather than one after the other (no load can pass the lock's atomic operation of
    /// the send before it).
    pub fn warm(&self) {
        std::hint::black_box(self.max_buffered);
        if let Some(tcp) = self.tcp_hint.get() {
            // A plain load of the stream's count, on the line of its file descriptor.
            std::hint::black_box(tcp.strong_count());
        }
    }

    /// Notes the TCP stream of the session's WebSocket for [`Socket::warm`]. The first one
    /// stays: a session has one WebSocket at most.
    pub(crate) fn hint_tcp(&self, tcp: &Arc<TcpStream>) {
        let _ = self.tcp_hint.set(Arc::downgrade(tcp));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this crate; the state is still
        // consistent enough to close the session, so recover the guard rather than propagate.
        crate::sync::lock(&self.state)
    }

    /// Sends one message (see [`Socket::send_all`]).
    ///
    /// If the outbox is full, the client is too far behind: the session is closed and
    /// [`SendError::Full`] returned.
    pub fn send(self: &Arc<Self>, msg: Message) -> Result<(), SendError> {
        self.send_all(std::iter::once(msg))
    }

    /// Sends several messages together (a Socket.IO packet and its attachments): all of them or
    /// none. Same policy as [`Socket::send`] when the outbox cannot take them all.
    ///
    /// On a WebSocket over plain TCP with nothing queued before them, the messages are written
    /// by the caller at once; otherwise they wait for the connection's task.
    pub fn send_all<I>(self: &Arc<Self>, msgs: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        self.hand_over(msgs, true)
    }

    /// Like [`Socket::send_all`], but the messages always wait for the connection's task, which
    /// writes them: a fan-out to many sockets on a runtime with several workers spreads its
    /// writes over them this way, instead of making them all on the caller's thread.
    pub fn queue_all<I>(self: &Arc<Self>, msgs: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        self.hand_over(msgs, false)
    }

    fn hand_over<I>(self: &Arc<Self>, msgs: I, direct: bool) -> Result<(), SendError>
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        let msgs = msgs.into_iter();
        let wake = {
            let mut st = self.lock();
            if st.session.closed().is_some() {
                return Err(SendError::Closed);
            }
            // Messages the caller writes at once (a WebSocket on plain TCP with nothing waiting)
            // count only if the kernel leaves them: a hand-over of several (a batch of
            // broadcasts) must not close a client that keeps up.
            let at_once = direct && st.writes_at_once();
            let may_queue = if at_once { 0 } else { msgs.len() };
            if st.outbox.len() + may_queue > self.max_buffered {
                drop(st);
                tracing::warn!(sid = %self.sid, "outbox full, closing a client that fell behind");
                self.close_with(CloseReason::SlowClient, false);
                return Err(SendError::Full);
            }
            if direct {
                let version = st.session.version();
                st.deliver(version, msgs)
            } else {
                st.outbox.extend(msgs.map(Message::into_packet));
                !st.writer_busy && !st.ws_out.stalled
            }
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues messages only if the client is ready for them now (Socket.IO's `volatile`): the
    /// outbox is empty and, on polling, a GET is waiting. Returns whether they were queued;
    /// dropping them never closes the session.
    pub fn send_volatile<I>(self: &Arc<Self>, msgs: I) -> bool
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        let wake = {
            let mut st = self.lock();
            let ready = st.session.closed().is_none()
                && st.outbox.is_empty()
                && match st.session.transport() {
                    // Nothing of an earlier write still waits for the socket.
                    Transport::WebSocket => st.ws_out.pending.is_empty(),
                    Transport::Polling | Transport::Upgrading => st.poll_active,
                };
            if !ready {
                return false;
            }
            st.deliver(self.version, msgs.into_iter())
        };
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Closes the session from the server side: packets already queued are still delivered,
    /// then the client gets a CLOSE packet.
    pub fn close(self: &Arc<Self>) {
        self.close_with(CloseReason::ServerClose, true);
    }

    /// Queues an engine packet of the server's own (ping, pong, noop). It counts against
    /// `max_buffered_packets` like any other: a client that makes the server answer (v3 pings)
    /// and never reads is closed when the outbox is full.
    pub(crate) fn push_control(self: &Arc<Self>, packet: Packet) {
        let mut st = self.lock();
        if st.session.closed().is_some() {
            return;
        }
        if st.outbox.len() >= self.max_buffered {
            drop(st);
            tracing::warn!(sid = %self.sid, "outbox full of control packets, closing the client");
            self.close_with(CloseReason::SlowClient, false);
            return;
        }
        let wake = st.push(packet);
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Closes the session once: marks it closed, wakes its waiters, tells the handler.
    ///
    /// `graceful` (a close decided by the server): what is queued is still delivered, then a
    /// CLOSE packet, and the session stays reachable until the client has taken them (or a
    /// grace period ends). Otherwise (the client closed, broke the protocol, timed out or went
    /// away) the queue is dropped and the session leaves the table at once: a later request
    /// for it gets "Session ID unknown", as in Node.
    pub(crate) fn close_with(self: &Arc<Self>, reason: CloseReason, graceful: bool) {
        let (reason, drained) = {
            let mut st = self.lock();
            if st.close_handled {
                return;
            }
            st.close_handled = true;
            if !graceful {
                st.outbox.clear();
            } else if st.session.closed().is_none() {
                st.outbox.push_back(Packet::Close);
            }
            // The state machine may have closed itself already; its reason stands.
            let reason = st.session.close(reason);
            (reason, st.outbox.is_empty())
        };
        tracing::debug!(sid = %self.sid, reason = reason.as_str(), "session closed");
        // Nothing left to deliver: no later request needs the session, so it leaves the table
        // before anyone hears of the close (a parked GET still holds it and answers). Otherwise
        // the transport removes it once the queue is drained, or after a grace period.
        if drained {
            self.finish();
        }
        self.wake.notify_one();
        self.closed_wake.notify_waiters();
        if let Some(shared) = self.shared.upgrade() {
            shared.handler.on_close(self, reason);
        }
    }

    /// Removes the session from the engine's table. Idempotent.
    pub(crate) fn finish(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.remove(self.sid);
        }
    }

    pub(crate) fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_session_keeps_its_own_copy_of_the_request() {
        // As hyper does: the URI and the header values are slices of one big read buffer.
        let mut raw = b"/socket.io/?EIO=4&transport=polling".to_vec();
        raw.extend_from_slice(b"http://example.comsecret");
        raw.resize(8192, b' ');
        let read_buffer = Bytes::from(raw);
        let mut value = HeaderValue::from_maybe_shared(read_buffer.slice(53..59)).unwrap();
        value.set_sensitive(true);
        let req = http::Request::builder()
            .uri(Uri::from_maybe_shared(read_buffer.slice(..35)).unwrap())
            .header(
                "origin",
                HeaderValue::from_maybe_shared(read_buffer.slice(35..53)).unwrap(),
            )
            .header("x-token", value)
            .header("x-token", "second")
            .body(())
            .unwrap();
        let info = RequestInfo::detached(&req);
        drop(req);
        assert!(
            read_buffer.is_unique(),
            "the session still holds the read buffer"
        );
        assert_eq!(info.uri, "/socket.io/?EIO=4&transport=polling");
        assert_eq!(info.uri.query(), Some("EIO=4&transport=polling"));
        assert_eq!(info.headers.get("origin"), Some("http://example.com"));
        let tokens: Vec<_> = info.headers.get_all("x-token").collect();
        assert_eq!(tokens, ["secret", "second"]);
        let copied = info.headers.to_header_map();
        let marks: Vec<bool> = copied
            .get_all("x-token")
            .iter()
            .map(|v| v.is_sensitive())
            .collect();
        assert_eq!(marks, [true, false], "the sensitive mark is kept");
        assert_eq!(info.remote_addr, None);
    }

    #[test]
    fn the_client_address_is_read_from_trusted_proxies_only() {
        let info = |peer: &str, forwarded: &[&str]| {
            let mut req = http::Request::builder().uri("/");
            for f in forwarded {
                req = req.header("x-forwarded-for", *f);
            }
            let mut req = req.body(()).unwrap();
            req.extensions_mut()
                .insert(RemoteAddr(peer.parse().unwrap()));
            RequestInfo::detached(&req)
        };
        let trusted = crate::TrustedProxies::default();
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        // Straight from a client: its own address, whatever it claims.
        assert_eq!(
            info("203.0.113.9:1000", &["198.51.100.1"]).client_address(&trusted),
            ip("203.0.113.9")
        );
        // Through nginx on the same host.
        assert_eq!(
            info("127.0.0.1:1000", &["198.51.100.1"]).client_address(&trusted),
            ip("198.51.100.1")
        );
        // A client that sends its own header through the proxy: the proxy's entry counts.
        assert_eq!(
            info("127.0.0.1:1000", &["10.9.9.9, 198.51.100.1"]).client_address(&trusted),
            ip("198.51.100.1")
        );
        // No header: the peer.
        assert_eq!(
            info("127.0.0.1:1000", &[]).client_address(&trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn what_a_send_reads_is_on_the_first_two_cache_lines() {
        use std::mem::{offset_of, size_of};
        // Where the lock keeps its own word is std's business: count it before the data,
        // whichever side it is on.
        let lock_word = size_of::<Mutex<State>>() - size_of::<State>();
        let session = offset_of!(Socket, state) + lock_word + offset_of!(State, session);
        // The `Arc`'s two counts come first in the allocation; `closed` and the version are
        // the session's first bytes.
        assert!(
            2 * size_of::<usize>() + session + 2 <= 128,
            "the session starts at {session}"
        );
        assert_eq!(offset_of!(Socket, max_buffered), 0);
    }
}
