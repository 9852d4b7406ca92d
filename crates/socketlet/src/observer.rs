//! Watching a server: connections, sockets, rooms and packets, for metrics, the Admin UI or
//! backend hooks, without touching the server's code.
//!
//! ```
//! use socketlet::{DisconnectReason, Observer, Socket, SocketIo};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! #[derive(Default)]
//! struct Connected(AtomicUsize);
//!
//! impl Observer for Connected {
//!     fn socket_connected(&self, _socket: &Socket) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//!     fn socket_disconnected(&self, _socket: &Socket, _reason: DisconnectReason) {
//!         self.0.fetch_sub(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let io = SocketIo::new();
//! let connected = Arc::new(Connected::default());
//! io.observe(connected.clone());
//! ```
//!
//! Every method has an empty default: an observer implements what it needs. A server without
//! observers pays one relaxed atomic load per event for the feature.

use crate::data::Data;
use crate::error::DisconnectReason;
use crate::socket::Socket;
use socketlet_engine::sync::{read, write};
use socketlet_engine::{CloseReason, Socket as Connection};
use socketlet_socketio_proto::Packet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// What an observer hears. Methods are called where things happen, on the thread that does
/// them, with no lock of the server held: they must be quick and must not block (hand slow
/// work to a task or a channel). They may call the server's API.
#[allow(unused_variables)]
pub trait Observer: Send + Sync + 'static {
    /// An Engine.IO connection opened (before it joins any namespace).
    fn connection_opened(&self, connection: &Arc<Connection>) {}

    /// A connection moved from long-polling to WebSocket.
    fn connection_upgraded(&self, connection: &Arc<Connection>) {}

    /// A connection closed, for `reason`.
    fn connection_closed(&self, connection: &Arc<Connection>, reason: CloseReason) {}

    /// A socket joined its namespace (after middlewares, before the connection handlers).
    fn socket_connected(&self, socket: &Socket) {}

    /// A socket left its namespace, for `reason` (its rooms can still be read).
    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {}

    /// A socket joined a room (by name; not its own id).
    fn room_joined(&self, socket: &Socket, room: &str) {}

    /// A socket left a room.
    fn room_left(&self, socket: &Socket, room: &str) {}

    /// A client sent an event (before its handlers run). `bytes`: the size of the packet as
    /// received, attachments included.
    fn event_received(&self, socket: &Socket, event: &str, data: &Data, bytes: usize) {}

    /// A client answered an ack.
    fn ack_received(&self, socket: &Socket, data: &Data) {}

    /// A packet was sent to one socket (an emit, an ack, a CONNECT answer...). `bytes`: its
    /// encoded size, attachments included.
    fn packet_sent(&self, socket: &Socket, packet: &Packet, bytes: usize) {}

    /// A packet was broadcast to `receivers` sockets of namespace `nsp` on this node, encoded
    /// once in `bytes` bytes (attachments included).
    fn broadcast_sent(&self, nsp: &str, packet: &Packet, receivers: usize, bytes: usize) {}

    /// `count` volatile packets of namespace `nsp` were dropped: their clients could not take
    /// them right then.
    fn volatile_dropped(&self, nsp: &str, count: usize) {}

    /// A socket did not answer an ack in time ([`Socket::emit_with_ack`]).
    fn ack_timed_out(&self, socket: &Socket) {}
}

/// The observers of one server, shared by its namespaces and clients.
#[derive(Default)]
pub(crate) struct Hub {
    /// Whether there is any observer: the one load a server without observers pays.
    observed: AtomicBool,
    /// Replaced whole when an observer is added: callers clone the list and call it with no
    /// lock held.
    list: RwLock<Arc<[Arc<dyn Observer>]>>,
}

impl Hub {
    pub(crate) fn add(&self, observer: Arc<dyn Observer>) {
        let mut list = write(&self.list);
        let mut all = list.to_vec();
        all.push(observer);
        *list = all.into();
        self.observed.store(true, Ordering::Release);
    }

    /// Calls `f` on every observer, if there are any.
    #[inline]
    pub(crate) fn each(&self, f: impl Fn(&dyn Observer)) {
        if !self.observed.load(Ordering::Relaxed) {
            return;
        }
        let list = read(&self.list).clone();
        for o in list.iter() {
            f(o.as_ref());
        }
    }

    pub(crate) fn broadcast_sent(
        &self,
        nsp: &str,
        packet: &Packet,
        receivers: usize,
        bytes: usize,
    ) {
        self.each(|o| o.broadcast_sent(nsp, packet, receivers, bytes));
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("observers", &read(&self.list).len())
            .finish()
    }
}
