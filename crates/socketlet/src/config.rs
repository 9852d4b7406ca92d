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
/// | `adapter` | in memory | `adapter` |
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
    /// Makes each namespace's adapter.
    pub adapter: AdapterFactory,
}

impl std::fmt::Debug for SocketIoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoConfig")
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("decoder", &self.decoder)
            .field("parser", &self.parser)
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
            adapter: Arc::new(|_nsp: &str| Arc::new(MemoryAdapter) as Arc<dyn crate::Adapter>),
        }
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
