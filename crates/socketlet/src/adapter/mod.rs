//! Adapters: how room operations and broadcasts reach sockets, on this node and on others.
//!
//! Every namespace keeps the index of its own (local) sockets and rooms, its
//! [`LocalNamespace`]; an [`Adapter`] decides what else an operation does. [`MemoryAdapter`]
//! does nothing else: it is single-node mode, and the stand-in in tests. A cluster adapter
//! (Redis) delivers locally through the same [`LocalNamespace`] methods and forwards the
//! operation to the other nodes, which is why every method that may cross nodes returns a
//! future.

mod memory;
mod parent;
pub mod session;

pub use memory::MemoryAdapter;
pub(crate) use parent::ParentAdapter;
pub use session::{Restored, Session};

use crate::data::Data;
use crate::info::SocketInfo;
pub use crate::local::{LocalAcks, LocalNamespace};
use crate::operators::AckResponses;
use socketlet_socketio_proto::Packet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as the adapter methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A room name.
pub type Room = String;

/// Which sockets an operation targets, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Sockets in any of these rooms; every socket of the namespace when empty. A socket's own
    /// id is a room holding just that socket.
    pub rooms: Vec<Room>,
    /// Minus sockets in any of these rooms.
    pub except: Vec<Room>,
    /// Drop the packet for sockets not ready to receive it right now.
    pub volatile: bool,
    /// This node only (no cluster delivery).
    pub local: bool,
    /// The packet's last argument is a connection-recovery offset (set by the adapter that
    /// appended it): protocol v4 clients, which cannot recover, get the packet without it.
    pub offset: bool,
}

/// An adapter failure: the part of an operation that had to cross nodes did not complete. The
/// local part still happened; no connection ends because of it.
///
/// It keeps what caused it (a Redis error, say) as its [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct AdapterError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl AdapterError {
    /// An error with a message of its own.
    pub fn new(message: impl Into<String>) -> Self {
        AdapterError {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source` (its text follows the message when displayed).
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AdapterError {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// What went wrong, without the source's text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AdapterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// How [`Adapter::disconnect_sockets`] ends the targeted sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// They leave the namespace (the clients get a DISCONNECT and do not reconnect on their
    /// own); their connections stay open for their other namespaces.
    Namespace,
    /// Their whole connections close, without a DISCONNECT (the clients see their transport
    /// close and reconnect).
    Connection,
}

/// Room operations and broadcasts of one namespace, across the nodes of a cluster.
///
/// Every method has a default that does the local part only, with the namespace's
/// [`LocalNamespace`]: single-node mode ([`MemoryAdapter`]) implements none of them. A cluster
/// adapter overrides what crosses nodes, calling the same [`LocalNamespace`] methods for this
/// node's part. A wrapping adapter (one that adds to another, as the in-memory recovery store
/// of [`session`] does) names the adapter it wraps with [`Adapter::wrapped`]: every
/// method it does not override then goes to that adapter, so it overrides only what it changes.
/// `opts.local` asks for the local part only.
///
/// Methods are called with no lock of the server held, and must not block: what waits for
/// other nodes goes in the returned future.
pub trait Adapter: Send + Sync + 'static {
    /// The adapter this one wraps, if any: the default of every other method forwards to it
    /// instead of doing the local part. Default: `None`. Never `self` (the defaults would
    /// forward to themselves without end).
    ///
    /// A wrapper that counts broadcasts and leaves everything to the adapter it wraps:
    ///
    /// ```
    /// use socketlet::adapter::{Adapter, AdapterError, BroadcastOptions, LocalNamespace};
    /// use socketlet::socketio_proto::Packet;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// struct Counting {
    ///     inner: Arc<dyn Adapter>,
    ///     broadcasts: AtomicU64,
    /// }
    ///
    /// impl Adapter for Counting {
    ///     fn wrapped(&self) -> Option<&dyn Adapter> {
    ///         Some(&*self.inner)
    ///     }
    ///
    ///     fn broadcast(
    ///         &self,
    ///         local: &LocalNamespace,
    ///         packet: Packet,
    ///         opts: BroadcastOptions,
    ///     ) -> Result<(), AdapterError> {
    ///         self.broadcasts.fetch_add(1, Ordering::Relaxed);
    ///         self.inner.broadcast(local, packet, opts)
    ///     }
    /// }
    /// ```
    fn wrapped(&self) -> Option<&dyn Adapter> {
        None
    }

    /// Sends an already built packet to the targeted sockets.
    fn broadcast(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        if let Some(inner) = self.wrapped() {
            return inner.broadcast(local, packet, opts);
        }
        local.broadcast(&packet, &opts);
        Ok(())
    }

    /// Sends an event that expects an ack from every targeted socket and gathers the answers
    /// until all came or `timeout` passed. What did not come, and whether the other nodes
    /// could be reached at all, is in the [`AckResponses`].
    fn broadcast_with_ack(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        if let Some(inner) = self.wrapped() {
            return inner.broadcast_with_ack(local, packet, opts, timeout);
        }
        Box::pin(local.broadcast_with_ack(packet, &opts, timeout))
    }

    /// Describes the targeted sockets.
    fn fetch_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        if let Some(inner) = self.wrapped() {
            return inner.fetch_sockets(local, opts);
        }
        let sockets = local.fetch_sockets(&opts);
        Box::pin(std::future::ready(Ok(sockets)))
    }

    /// Makes the targeted sockets join `rooms`.
    fn add_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        if let Some(inner) = self.wrapped() {
            return inner.add_sockets(local, opts, rooms);
        }
        local.add_sockets(&opts, &rooms);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Makes the targeted sockets leave `rooms`.
    fn del_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        if let Some(inner) = self.wrapped() {
            return inner.del_sockets(local, opts, rooms);
        }
        local.del_sockets(&opts, &rooms);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Disconnects the targeted sockets, or closes their connections.
    fn disconnect_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        how: Disconnect,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        if let Some(inner) = self.wrapped() {
            return inner.disconnect_sockets(local, opts, how);
        }
        local.disconnect_sockets(&opts, how);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Sends an event to the other nodes' server-side handlers. Single node: nothing to do.
    fn server_side_emit(
        &self,
        local: &LocalNamespace,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        match self.wrapped() {
            Some(inner) => inner.server_side_emit(local, event, data),
            None => Ok(()),
        }
    }

    /// A room got its first socket on this node. `private` rooms are sockets' own ids (every
    /// socket is in its own room from connect to disconnect); the others are rooms joined by
    /// name. Called after the change, with no lock held; must not block. Default: nothing (an
    /// adapter that subscribes per room, as Redis sharded pub/sub, listens here).
    fn room_created(&self, local: &LocalNamespace, room: &str, private: bool) {
        if let Some(inner) = self.wrapped() {
            inner.room_created(local, room, private);
        }
    }

    /// The last socket of this node left a room (see [`Adapter::room_created`]).
    fn room_deleted(&self, local: &LocalNamespace, room: &str, private: bool) {
        if let Some(inner) = self.wrapped() {
            inner.room_deleted(local, room, private);
        }
    }

    /// This adapter's namespace is gone: a child of a dynamic namespace that a CONNECT made and
    /// no socket joined (the CONNECT was refused), or a namespace made twice at once, whose
    /// other copy stands. Let go of what was taken for this adapter (a cluster adapter's
    /// subscriptions: the factory may well be called again for the same name, so count
    /// them); nothing more is asked of it. Called once, with no lock held. Default: nothing.
    fn namespace_removed(&self, local: &LocalNamespace) {
        if let Some(inner) = self.wrapped() {
            inner.namespace_removed(local);
        }
    }

    /// Whether the adapter keeps connection-recovery sessions and packets itself (the Redis
    /// Streams adapter does). When it does not and recovery is on, the server wraps it with an
    /// in-memory store ([`session`]). Default: false.
    fn keeps_sessions(&self) -> bool {
        self.wrapped().is_some_and(|inner| inner.keeps_sessions())
    }

    /// Keeps a session of a socket that left for a recoverable reason (connection state
    /// recovery). Default: nothing.
    fn persist_session(&self, local: &LocalNamespace, session: Session) {
        if let Some(inner) = self.wrapped() {
            inner.persist_session(local, session);
        }
    }

    /// Gives back the session of `pid`, with the events it missed after `offset`, if both are
    /// still known; `None` otherwise (the client then gets a fresh socket). Default: `None`.
    fn restore_session(
        &self,
        local: &LocalNamespace,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<Restored>, AdapterError>> {
        match self.wrapped() {
            Some(inner) => inner.restore_session(local, pid, offset),
            None => Box::pin(std::future::ready(Ok(None))),
        }
    }
}

/// Makes the adapter of each namespace when it is created.
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;
