//! A Redis adapter for socketlet: many nodes, one cluster.
//!
//! Every node keeps its own sockets; broadcasts, room operations, `fetch_sockets`, server-side
//! emits and broadcasts with acks reach the other nodes through Redis pub/sub, in the wire format
//! of Node's `@socket.io/redis-adapter` 8.x. A socketlet node and a Node socket.io node therefore
//! share one cluster and one room, and the emitters that Django or Celery code already uses keep
//! working: Node's `@socket.io/redis-emitter`, and python-socketio's
//! `RedisManager(write_only=True)` (JSON, python-socketio 5.14 and later; pickled messages of older
//! versions only when [`RedisConfig::accept_pickle`] is on, through a reader that understands
//! plain data and can never run code).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use socketlet::SocketIo;
//! use socketlet_redis::{RedisCluster, RedisConfig};
//!
//! let cluster = RedisCluster::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let io = SocketIo::builder().adapter(cluster.adapter_factory()).build();
//! cluster.attach(&io);
//! # Ok(()) }
//! ```
//!
//! # Sharded pub/sub
//!
//! With [`RedisConfig::sharded`], nodes talk over Redis 7 sharded pub/sub in the format of
//! Node's `createShardedAdapter` (socket.io-adapter's cluster messages); see
//! [`SubscriptionMode`]. A node speaks to one Redis endpoint (a standalone Redis 7): it is not a
//! Redis Cluster client and does not follow `MOVED` redirections.
//!
//! # Redis Streams, and connection state recovery across nodes
//!
//! With [`RedisConfig::with_streams`], nodes speak the format of Node's
//! `@socket.io/redis-streams-adapter` 0.3.x instead (see [`StreamsConfig`]): broadcasts and room
//! operations are entries of a Redis stream that every node reads, requests that want answers
//! go over pub/sub, and the adapter keeps connection-recovery sessions in Redis, so that a
//! client that lost its connection to one node recovers on any other (a Node one included).
//!
//! # Faults
//!
//! When Redis goes away, every node keeps serving its own clients: local delivery never waits
//! for Redis. The subscriber reconnects with exponential backoff (100 ms to 5 s) and resubscribes;
//! messages published during the outage are lost (pub/sub keeps nothing). Requests that need
//! answers from other nodes (`fetch_sockets`) end with an [`socketlet::AdapterError`] after
//! [`RedisConfig::request_timeout`] instead of hanging.
//!
//! # How this crate is built
//!
//! - `node.rs`: the connection to Redis (one subscriber, one ordered publish queue), channels,
//!   and the dispatch of what arrives.
//! - `adapter.rs`: the [`socketlet::Adapter`] of each namespace (local part, gathering of other
//!   nodes' answers), over a wire format:
//! - `classic.rs`: classic pub/sub, and the answers to other nodes' requests;
//! - `sharded.rs`: Redis 7 sharded pub/sub ([`RedisConfig::sharded`]), likewise.
//! - `streams.rs`: Redis Streams ([`RedisConfig::streams`]): its own adapter (stream entries,
//!   readers, sessions), the sharded format's messages over classic pub/sub for requests.
//! - `msgpack.rs`: Node's msgpack packets to and from socketlet's JSON with placeholders.
//! - `python.rs` and `pickle.rs`: python-socketio's message queue.

mod adapter;
mod classic;
pub mod msgpack;
mod node;
pub mod pickle;
mod python;
mod sharded;
mod streams;
#[cfg(test)]
mod streams_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod wire_tests;

pub use streams::StreamsConfig;

/// What arrives from Redis, read without acting on it ([`incoming::parse_incoming`], which a
/// node's dispatch runs first): the entry point of the fuzz target
/// `fuzz/fuzz_targets/redis_requests.rs`. Not part of the API.
#[doc(hidden)]
pub mod incoming {
    pub use crate::classic::{Broadcast, Request, RequestKind};
    pub use crate::node::{parse_incoming, Answer, Incoming};
    pub use crate::python::{PyMessage, PyMethod, Refused};
    pub use crate::sharded::{Message, MessageKind};
    pub use crate::streams::parse_entry;
}

use node::Node;
use socketlet::adapter::AdapterFactory;
use socketlet::SocketIo;
use std::sync::Arc;
use std::time::Duration;

/// Settings of a Redis cluster node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// The channel prefix (Node's `key`). Default: `socket.io`.
    pub key: String,
    /// How long a request to other nodes may wait for their answers (Node's `requestsTimeout`).
    /// Default: 5 s.
    pub request_timeout: Duration,
    /// The python-socketio message-queue channel to listen to (`socketio` is python-socketio's
    /// default), or `None` not to listen. Default: `None`.
    pub python_channel: Option<String>,
    /// Accept pickled messages on the python channel (python-socketio up to 5.13), read with a
    /// plain-data reader that refuses anything else. Default: off.
    pub accept_pickle: bool,
    /// Messages waiting to be published, per node. When full, a broadcast still reaches this
    /// node's clients and fails for the others with an error. Default: 65,536.
    pub publish_queue: usize,
    /// Use Redis 7 sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`), in the format of Node's
    /// `createShardedAdapter` from `@socket.io/redis-adapter` 8.x, with this subscription mode;
    /// `None` for classic pub/sub (Node's `createAdapter`). All nodes of a cluster must agree:
    /// a sharded node and a classic one do not hear each other (as in Node). Node's
    /// `@socket.io/redis-emitter` publishes classic messages only; python-socketio's channel
    /// works in both modes. Default: `None`.
    pub sharded: Option<SubscriptionMode>,
    /// Use Redis Streams in the format of Node's `@socket.io/redis-streams-adapter` 0.3.x, with
    /// these settings; `None` for pub/sub only. Not with [`RedisConfig::sharded`] (connecting
    /// fails). Keeps connection state recovery sessions in Redis (when recovery is on), so that
    /// clients recover on any node. As with Node's streams adapter, what Node's
    /// `@socket.io/redis-emitter` publishes (classic pub/sub) is not heard; python-socketio's
    /// channel still is. Default: `None`.
    pub streams: Option<StreamsConfig>,
}

/// Which sharded channels a node subscribes to (Node's `subscriptionMode`).
///
/// Every node always listens on `<key>#<nsp>#` and on its own response channel
/// `<key>#<nsp>#<uid>#`. With a dynamic mode it also listens on `<key>#<nsp>#<room>#` for every
/// room that has sockets on this node, and a broadcast to exactly one such room (without acks) is
/// published there, so that a node only receives the broadcasts of rooms it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// One channel per namespace; every node gets every broadcast.
    Static,
    /// A channel per room joined by name; broadcasts to a socket's own id use the namespace
    /// channel. Node's default.
    #[default]
    Dynamic,
    /// A channel per room, sockets' own ids included.
    DynamicPrivate,
}

impl std::str::FromStr for SubscriptionMode {
    type Err = String;

    /// `static`, `dynamic` or `dynamic-private`, as Node's option values.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static" => Ok(SubscriptionMode::Static),
            "dynamic" => Ok(SubscriptionMode::Dynamic),
            "dynamic-private" => Ok(SubscriptionMode::DynamicPrivate),
            other => Err(format!(
                "unknown subscription mode {other:?} (static, dynamic or dynamic-private)"
            )),
        }
    }
}

impl SubscriptionMode {
    /// Whether a room of this kind gets a channel of its own.
    pub(crate) fn has_channel(self, private: bool) -> bool {
        match self {
            SubscriptionMode::Static => false,
            SubscriptionMode::Dynamic => !private,
            SubscriptionMode::DynamicPrivate => true,
        }
    }
}

impl RedisConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key: "socket.io".into(),
            request_timeout: Duration::from_secs(5),
            python_channel: None,
            accept_pickle: false,
            publish_queue: 65_536,
            sharded: None,
            streams: None,
        }
    }

    /// Sets [`RedisConfig::key`].
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Sets [`RedisConfig::request_timeout`].
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets [`RedisConfig::python_channel`].
    pub fn with_python_channel(mut self, channel: Option<String>) -> Self {
        self.python_channel = channel;
        self
    }

    /// Sets [`RedisConfig::sharded`].
    pub fn with_sharded(mut self, mode: Option<SubscriptionMode>) -> Self {
        self.sharded = mode;
        self
    }

    /// Sets [`RedisConfig::streams`].
    pub fn with_streams(mut self, streams: Option<StreamsConfig>) -> Self {
        self.streams = streams;
        self
    }

    /// Sets [`RedisConfig::accept_pickle`].
    pub fn with_accept_pickle(mut self, accept: bool) -> Self {
        self.accept_pickle = accept;
        self
    }
}

/// This node's membership in a Redis cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisCluster {
    node: Arc<Node>,
    /// The stream writer and readers, in streams mode.
    streams: Option<Arc<streams::Streams>>,
}

impl RedisCluster {
    /// Connects to Redis (the first connection must succeed; later outages are survived).
    pub async fn connect(config: RedisConfig) -> Result<RedisCluster, redis::RedisError> {
        if config.streams.is_some() && config.sharded.is_some() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Redis Streams and sharded pub/sub are exclusive",
            )));
        }
        let node = Node::connect(config).await?;
        let streams = node
            .config
            .streams
            .clone()
            .map(|c| streams::Streams::start(&node, c));
        Ok(RedisCluster { node, streams })
    }

    /// The adapter factory to give the server (`SocketIo::builder().adapter(...)`).
    pub fn adapter_factory(&self) -> AdapterFactory {
        let node = self.node.clone();
        let streams = self.streams.clone();
        Arc::new(move |nsp: &str| {
            node.register_namespace(nsp);
            if let Some(streams) = &streams {
                return Arc::new(streams::StreamsAdapter::new(
                    node.clone(),
                    streams.clone(),
                    nsp,
                )) as Arc<dyn socketlet::Adapter>;
            }
            match node.config.sharded {
                Some(mode) => Arc::new(adapter::RedisAdapter::new(
                    node.clone(),
                    nsp,
                    sharded::Sharded(mode),
                )) as Arc<dyn socketlet::Adapter>,
                None => Arc::new(adapter::RedisAdapter::new(
                    node.clone(),
                    nsp,
                    classic::Classic,
                )),
            }
        })
    }

    /// Starts delivering what other nodes publish to `io`'s sockets.
    pub fn attach(&self, io: &SocketIo) {
        self.node.attach(io);
        for nsp in io.namespace_names() {
            self.node.register_namespace(&nsp);
        }
        if let Some(streams) = &self.streams {
            streams.attach();
        }
    }

    /// This node's id in the cluster (6 characters, as Node's adapter uses).
    pub fn uid(&self) -> &str {
        self.node.uid()
    }

    /// How many nodes the cluster has now (subscribers of `/`'s request channel; in streams
    /// mode, of `/`'s public channel).
    pub async fn server_count(&self) -> Result<usize, socketlet::AdapterError> {
        self.node.server_count("/").await
    }

    /// This node's view of Redis now, for metrics: no Redis round trip.
    pub fn stats(&self) -> RedisStats {
        let (subscribed, publishing) = self.node.health();
        RedisStats {
            subscribed,
            publishing,
            publish_queue: self.node.publish_queue_len()
                + self.streams.as_ref().map_or(0, |s| s.queue_len()),
            publish_queue_max: self.node.config.publish_queue,
        }
    }
}

/// A node's view of Redis ([`RedisCluster::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// The pub/sub connection is up and subscribed: other nodes' messages arrive.
    pub subscribed: bool,
    /// The last publication worked (or none was tried yet).
    pub publishing: bool,
    /// Messages waiting to be published (in streams mode, stream entries too).
    pub publish_queue: usize,
    /// The publish queue's bound; past it, emits to the cluster fail.
    pub publish_queue_max: usize,
}
