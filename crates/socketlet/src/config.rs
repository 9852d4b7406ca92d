//! Server settings and the builder.

use crate::adapter::{AdapterFactory, MemoryAdapter};
use crate::server::SocketIo;
use socketlet_engine::{Cors, EngineConfig, Transports};
use socketlet_socketio_proto::DecoderLimits;
use std::sync::Arc;
use std::time::Duration;

/// Socket.IO server settings. Defaults equal Node socket.io 4.8's unless noted:
///
/// | setting | default | Node's name |
/// | --- | --- | --- |
/// | `engine.path` | `/socket.io` | `path` |
/// | `engine.*` | see [`EngineConfig`] | |
/// | `connect_timeout` | 45 s | `connectTimeout` |
/// | `ack_timeout` | 30 s (Node: none; acks here always end) | - |
/// | `decoder` | 10 attachments, 1e6 bytes, 10 s | - |
/// | `parser` | JSON | `parser` |
/// | `recovery` | off | `connectionStateRecovery` |
/// | `adapter` | in memory | `adapter` |
/// | `max_child_namespaces` | 10,000 (Node: no bound) | - |
#[derive(Clone)]
#[non_exhaustive]
pub struct SocketIoConfig {
    /// The Engine.IO settings (path, heartbeats, transports, CORS, limits).
    pub engine: EngineConfig,
    /// A connection that joins no namespace within this time is closed.
    pub connect_timeout: Duration,
    /// The default wait for an ack in [`crate::Socket::emit_with_ack`] and broadcasts with acks.
    pub ack_timeout: Duration,
    /// Bounds on binary attachments.
    pub decoder: DecoderLimits,
    /// How packets are written on the wire. Clients must use the same (there is no
    /// negotiation, as in Node).
    pub parser: Parser,
    /// Connection state recovery, when on.
    pub recovery: Option<RecoveryConfig>,
    /// Makes each namespace's adapter.
    pub adapter: AdapterFactory,
    /// How many children of dynamic namespaces ([`SocketIo::dynamic`]) may exist at once, all
    /// parents together: a CONNECT that would make one more is answered "Invalid namespace".
    /// Children that a refused CONNECT made are removed at once, so this bounds what clients
    /// that are let in can make.
    pub max_child_namespaces: usize,
}

impl std::fmt::Debug for SocketIoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoConfig")
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("decoder", &self.decoder)
            .field("parser", &self.parser)
            .field("recovery", &self.recovery)
            .field("max_child_namespaces", &self.max_child_namespaces)
            .finish_non_exhaustive()
    }
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            engine: EngineConfig::default().with_path("/socket.io"),
            connect_timeout: Duration::from_millis(45_000),
            ack_timeout: Duration::from_secs(30),
            decoder: DecoderLimits::default(),
            parser: Parser::Json,
            recovery: None,
            adapter: Arc::new(|_nsp: &str| Arc::new(MemoryAdapter) as Arc<dyn crate::Adapter>),
            max_child_namespaces: 10_000,
        }
    }
}

/// Connection state recovery (Node's `connectionStateRecovery`): a client that loses its
/// connection and comes back within `max_disconnection_duration` gets its socket back (id,
/// rooms, data) and the events it missed. Off unless configured.
///
/// | setting | default |
/// | --- | --- |
/// | `max_disconnection_duration` | 2 min |
/// | `skip_middlewares` | true |
/// | `max_packets` | 10,000 (kept for missed-event replay, per namespace) |
/// | `max_bytes` | 64 MiB (per namespace) |
/// | `max_sessions` | 100,000 (per namespace) |
///
/// **When a bound is reached**, the oldest packets (or sessions) go; a client whose offset or
/// session went recovers as a fresh socket, never with an error.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// How long a disconnected socket's session, and the packets it may miss, are kept.
    pub max_disconnection_duration: Duration,
    /// A recovered socket skips the namespace's middlewares.
    pub skip_middlewares: bool,
    /// Packets kept for replay.
    pub max_packets: usize,
    /// Bytes of packets kept for replay (a rough measure: their JSON and attachments).
    pub max_bytes: usize,
    /// Sessions kept.
    pub max_sessions: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_packets: 10_000,
            max_bytes: 64 << 20,
            max_sessions: 100_000,
        }
    }
}

impl RecoveryConfig {
    /// Sets [`RecoveryConfig::max_disconnection_duration`].
    pub fn with_max_disconnection_duration(mut self, d: Duration) -> Self {
        self.max_disconnection_duration = d;
        self
    }

    /// Sets [`RecoveryConfig::skip_middlewares`].
    pub fn with_skip_middlewares(mut self, skip: bool) -> Self {
        self.skip_middlewares = skip;
        self
    }

    /// Sets [`RecoveryConfig::max_packets`].
    pub fn with_max_packets(mut self, n: usize) -> Self {
        self.max_packets = n;
        self
    }

    /// Sets [`RecoveryConfig::max_bytes`].
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`RecoveryConfig::max_sessions`].
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }
}

/// How Socket.IO packets are written on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parser {
    /// Socket.IO's own format: JSON text, binary attachments in messages of their own (the
    /// default parser of every client).
    #[default]
    Json,
    /// One msgpack message per packet, binary inline: `socket.io-msgpack-parser` (the client's
    /// `parser` option, or `socket.io.msgpack.min.js`) and python-socketio's
    /// `serializer='msgpack'`. Protocol v5 clients only (socket.io-client 3.x and later,
    /// python-socketio 5.x); a client that sends text is refused.
    Msgpack,
}

/// Builds a [`SocketIo`] server.
///
/// ```
/// use std::time::Duration;
/// let io = socketlet::SocketIo::builder()
///     .ping_interval(Duration::from_secs(10))
///     .cors(socketlet::Cors::Any)
///     .build();
/// assert_eq!(io.config().engine.path, "/socket.io");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: SocketIoConfig,
}

impl Builder {
    /// Starts from the defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Starts from a whole config.
    pub fn from_config(config: SocketIoConfig) -> Builder {
        Builder { config }
    }

    /// The path (default `/socket.io`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.engine = self.config.engine.with_path(path);
        self
    }

    /// Time between heartbeats (default 25 s).
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.config.engine = self.config.engine.with_ping_interval(d);
        self
    }

    /// Time allowed for a heartbeat answer (default 20 s).
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.config.engine = self.config.engine.with_ping_timeout(d);
        self
    }

    /// Time allowed to finish an upgrade (default 10 s).
    pub fn upgrade_timeout(mut self, d: Duration) -> Self {
        self.config.engine = self.config.engine.with_upgrade_timeout(d);
        self
    }

    /// Largest message or request body (default 1e6 bytes).
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.config.engine = self.config.engine.with_max_payload(bytes);
        self
    }

    /// Which origins may connect (default: same origin).
    pub fn cors(mut self, cors: Cors) -> Self {
        self.config.engine = self.config.engine.with_cors(cors);
        self
    }

    /// Which transports are allowed (default [`Transports::ALL`]).
    pub fn transports(mut self, transports: Transports) -> Self {
        self.config.engine = self.config.engine.with_transports(transports);
        self
    }

    /// Whether Engine.IO v3 / Socket.IO v4 clients are served (default true).
    pub fn allow_eio3(mut self, allow: bool) -> Self {
        self.config.engine = self.config.engine.with_allow_eio3(allow);
        self
    }

    /// Replaces the Engine.IO settings, keeping the ones set here before only if `f` does.
    pub fn engine(mut self, f: impl FnOnce(EngineConfig) -> EngineConfig) -> Self {
        self.config.engine = f(self.config.engine);
        self
    }

    /// The connect timeout (default 45 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// The default ack timeout (default 30 s).
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.config.ack_timeout = d;
        self
    }

    /// Bounds on binary attachments.
    pub fn decoder_limits(mut self, limits: DecoderLimits) -> Self {
        self.config.decoder = limits;
        self
    }

    /// How many children of dynamic namespaces may exist at once (default 10,000; see
    /// [`SocketIoConfig::max_child_namespaces`]).
    pub fn max_child_namespaces(mut self, n: usize) -> Self {
        self.config.max_child_namespaces = n;
        self
    }

    /// Turns connection state recovery on (default: off).
    pub fn connection_state_recovery(mut self, recovery: RecoveryConfig) -> Self {
        self.config.recovery = Some(recovery);
        self
    }

    /// How packets are written on the wire (default: JSON).
    pub fn parser(mut self, parser: Parser) -> Self {
        self.config.parser = parser;
        self
    }

    /// The adapter of every namespace (default: in memory).
    pub fn adapter(mut self, factory: AdapterFactory) -> Self {
        self.config.adapter = factory;
        self
    }

    /// The server.
    pub fn build(self) -> SocketIo {
        SocketIo::with_config(self.config)
    }
}
