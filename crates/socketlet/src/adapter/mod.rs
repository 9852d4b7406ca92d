//! Adapters: how room operations and broadcasts reach sockets, on this node and on others.
//!
//! Every namespace keeps the index of its own (local) sockets and rooms; an [`Adapter`] decides
//! what else an operation does. [`MemoryAdapter`] does nothing else: it is single-node mode, and
//! the stand-in in tests. A cluster adapter (Redis) delivers locally through the same
//! [`Namespace`] methods and forwards the operation to the other nodes, which is why every
//! method that may cross nodes returns a future.

mod memory;
mod parent;

pub use memory::MemoryAdapter;
pub(crate) use parent::ParentAdapter;

use crate::data::Data;
use crate::namespace::Namespace;
use crate::operators::AckResponses;
use crate::socket::SocketInfo;
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

/// Room operations and broadcasts of one namespace, across the nodes of a cluster.
///
/// Implementations do the local part with the namespace's `local_*` methods and add whatever
/// crosses nodes. `opts.local` asks for the local part only.
pub trait Adapter: Send + Sync + 'static {
    /// Sends an already built packet to the targeted sockets.
    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError>;

    /// Sends an event that expects an ack from every targeted socket and gathers the answers
    /// until all came or `timeout` passed. What did not come, and whether the other nodes
    /// could be reached at all, is in the [`AckResponses`].
    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses>;

    /// Describes the targeted sockets.
    fn fetch_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>>;

    /// Makes the targeted sockets join `rooms`.
    fn add_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Makes the targeted sockets leave `rooms`.
    fn del_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Disconnects the targeted sockets (and closes their whole connection when `close`).
    fn disconnect_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Sends an event to the other nodes' server-side handlers. Single node: nothing to do.
    fn server_side_emit(
        &self,
        ns: &Namespace,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        let _ = (ns, event, data);
        Ok(())
    }

    /// A room got its first socket on this node. `private` rooms are sockets' own ids (every
    /// socket is in its own room from connect to disconnect); the others are rooms joined by
    /// name. Called after the change, outside the namespace's locks; must not block. Default:
    /// nothing (an adapter that subscribes per room, as Redis sharded pub/sub, listens here).
    fn room_created(&self, ns: &Namespace, room: &str, private: bool) {
        let _ = (ns, room, private);
    }

    /// The last socket of this node left a room (see [`Adapter::room_created`]).
    fn room_deleted(&self, ns: &Namespace, room: &str, private: bool) {
        let _ = (ns, room, private);
    }
}

/// Makes the adapter of each namespace when it is created.
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;
