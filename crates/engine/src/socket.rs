//! One Engine.IO session as the layer above sees it: send messages, read its request, close it.
//!
//! All outgoing packets go through one bounded queue (the outbox), whatever the transport: a
//! polling GET drains it, or the WebSocket task does. The state machine of
//! [`socketlet_engineio_proto::session`] sits behind the same lock, so heartbeats, upgrades and
//! sends never disagree about which transport is live.

use crate::engine::Shared;
use crate::error::SendError;
use bytes::Bytes;
use http::{HeaderMap, Uri};
use socketlet_engineio_proto::session::{CloseReason, Session, Transport};
use socketlet_engineio_proto::{Packet, ProtocolVersion, Str};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
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
    fn into_packet(self) -> Packet {
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
pub struct RequestInfo {
    /// The handshake's URI, query included.
    pub uri: Uri,
    /// The handshake's headers.
    pub headers: HeaderMap,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
}

/// The address of the peer, put in request extensions by [`crate::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

pub(crate) struct State {
    pub(crate) session: Session,
    pub(crate) outbox: VecDeque<Packet>,
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
}

/// One Engine.IO session. Shared as `Arc<Socket>`; every method takes `&self`.
pub struct Socket {
    sid: Sid,
    version: ProtocolVersion,
    request: RequestInfo,
    max_buffered: usize,
    pub(crate) state: Mutex<State>,
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
        max_buffered: usize,
        shared: Weak<Shared>,
    ) -> Socket {
        Socket {
            sid,
            version: session.version(),
            request,
            max_buffered,
            state: Mutex::new(State {
                session,
                outbox: VecDeque::new(),
                poll_active: false,
                post_active: false,
                ws_attached: false,
                close_handled: false,
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this crate; the state is still
        // consistent enough to close the session, so recover the guard rather than propagate.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one message.
    ///
    /// If the outbox is full, the client is too far behind: the session is closed and
    /// [`SendError::Full`] returned.
    pub fn send(self: &Arc<Self>, msg: Message) -> Result<(), SendError> {
        self.send_all(std::iter::once(msg))
    }

    /// Queues several messages together (a Socket.IO packet and its attachments): all of them or
    /// none. Same policy as [`Socket::send`] when the outbox cannot take them all.
    pub fn send_all<I>(self: &Arc<Self>, msgs: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = Message>,
        I::IntoIter: ExactSizeIterator,
    {
        let msgs = msgs.into_iter();
        {
            let mut st = self.lock();
            if st.session.closed().is_some() {
                return Err(SendError::Closed);
            }
            if st.outbox.len() + msgs.len() > self.max_buffered {
                drop(st);
                tracing::warn!(sid = %self.sid, "outbox full, closing a client that fell behind");
                self.close_with(CloseReason::TransportError, false);
                return Err(SendError::Full);
            }
            st.outbox.extend(msgs.map(Message::into_packet));
        }
        self.wake.notify_one();
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
        {
            let mut st = self.lock();
            let ready = st.session.closed().is_none()
                && st.outbox.is_empty()
                && (st.poll_active || st.session.transport() == Transport::WebSocket);
            if !ready {
                return false;
            }
            st.outbox.extend(msgs.into_iter().map(Message::into_packet));
        }
        self.wake.notify_one();
        true
    }

    /// Closes the session from the server side: packets already queued are still delivered,
    /// then the client gets a CLOSE packet.
    pub fn close(self: &Arc<Self>) {
        self.close_with(CloseReason::ServerClose, true);
    }

    /// Queues an engine packet of the server's own (ping, pong, noop).
    pub(crate) fn push_control(&self, packet: Packet) {
        let mut st = self.lock();
        if st.session.closed().is_none() {
            st.outbox.push_back(packet);
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Closes the session once: marks it closed, wakes its waiters, tells the handler.
    pub(crate) fn close_with(self: &Arc<Self>, reason: CloseReason, tell_client: bool) {
        let reason = {
            let mut st = self.lock();
            if st.close_handled {
                return;
            }
            st.close_handled = true;
            if tell_client && st.session.closed().is_none() {
                st.outbox.push_back(Packet::Close);
            }
            // The state machine may have closed itself already; its reason stands.
            st.session.close(reason)
        };
        tracing::debug!(sid = %self.sid, reason = reason.as_str(), "session closed");
        self.wake.notify_one();
        self.closed_wake.notify_waiters();
        if let Some(shared) = self.shared.upgrade() {
            shared.handler.on_close(self, reason);
        }
        // Nothing left to deliver: no later request needs the session, so it leaves the table
        // now (a parked GET still holds it and answers with CLOSE). Otherwise the transport
        // removes it once the queue is drained, or after a grace period.
        if self.lock().outbox.is_empty() {
            self.finish();
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
