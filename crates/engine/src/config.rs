//! Engine settings, with defaults equal to Node's engine.io 6.6 (socket.io 4.8) unless noted.

use crate::cors::Cors;
use crate::proxy::{AllowedHosts, TrustedProxies};
use http::request::Parts;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Decides whether a handshake or an upgrade request is let in (Node's `allowRequest`). Return
/// `Err(message)` to refuse it with a 403 (Engine.IO error code 4, "Forbidden", plus the message
/// as `context`).
pub type AllowRequest = Arc<dyn Fn(&Parts) -> Result<(), String> + Send + Sync>;

/// Which transports clients may use. Default: both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transports {
    /// HTTP long-polling.
    pub polling: bool,
    /// WebSocket.
    pub websocket: bool,
}

impl Transports {
    /// Long-polling and WebSocket, with the upgrade between them (the default).
    pub const ALL: Transports = Transports {
        polling: true,
        websocket: true,
    };
    /// Long-polling only (old proxies that break WebSocket).
    pub const POLLING_ONLY: Transports = Transports {
        polling: true,
        websocket: false,
    };
    /// WebSocket only (clients with `transports: ["websocket"]`; no sticky sessions needed).
    pub const WEBSOCKET_ONLY: Transports = Transports {
        polling: false,
        websocket: true,
    };
}

impl Default for Transports {
    fn default() -> Self {
        Transports::ALL
    }
}

/// The `io` cookie set on the handshake response, for sticky load balancing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cookie {
    /// Cookie name. Default: `io`.
    pub name: String,
    /// Cookie path. Default: `/`.
    pub path: String,
    /// `HttpOnly`. Default: true.
    pub http_only: bool,
    /// `SameSite` value. Default: `Lax`.
    pub same_site: &'static str,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            name: "io".into(),
            path: "/".into(),
            http_only: true,
            same_site: "Lax",
        }
    }
}

/// Engine.IO server settings. Build one with [`EngineConfig::default`] and the `with_*` methods.
///
/// | setting | default | Node's name |
/// | --- | --- | --- |
/// | `path` | `/engine.io` (the Socket.IO server uses `/socket.io`) | `path` |
/// | `ping_interval` | 25 s | `pingInterval` |
/// | `ping_timeout` | 20 s | `pingTimeout` |
/// | `upgrade_timeout` | 10 s | `upgradeTimeout` |
/// | `max_payload` | 1,000,000 bytes | `maxHttpBufferSize` |
/// | `transports` | polling and websocket | `transports` |
/// | `allow_upgrades` | true | `allowUpgrades` |
/// | `compression_threshold` | `Some(1024)` | `httpCompression.threshold` |
/// | `cookie` | `None` | `cookie` |
/// | `cors` | same origin (python-engineio's default) | `cors` |
/// | `cors_credentials` | true (python-engineio's; Node: false) | `cors.credentials` |
/// | `trusted_proxies` | loopback | - |
/// | `allowed_hosts` | any | - |
/// | `allow_eio3` | true (Node: false) | `allowEIO3` |
/// | `allow_jsonp` | false (Node: true) | - |
/// | `max_body_time` | 30 s (Node: `requestTimeout`, 300 s) | - |
/// | `max_body_memory` | 64 MiB, server-wide (Node: unbounded) | - |
/// | `max_buffered_packets` | 4096 (Node: unbounded) | - |
/// | `max_packets_per_poll` | 16 (Node: unbounded) | - |
/// | `max_sessions` | 100,000 | - |
/// | `websocket_read_buffer` | 512 bytes | - |
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The path the engine answers on, without a trailing slash (both `/p` and `/p/` match).
    pub path: String,
    /// Time between heartbeats.
    pub ping_interval: Duration,
    /// Time allowed for the other side of a heartbeat.
    pub ping_timeout: Duration,
    /// Time allowed to complete an upgrade after the probe.
    pub upgrade_timeout: Duration,
    /// The largest request body or WebSocket message accepted, in bytes, advertised to v4
    /// clients as `maxPayload`. Larger input closes the session.
    pub max_payload: u64,
    /// Transports clients may use.
    pub transports: Transports,
    /// Whether a polling session may upgrade to WebSocket.
    pub allow_upgrades: bool,
    /// Polling responses at least this large are compressed (gzip or deflate, as the client
    /// accepts); `None` turns compression off.
    pub compression_threshold: Option<usize>,
    /// The cookie set on handshakes, if any.
    pub cookie: Option<Cookie>,
    /// Which origins may connect.
    pub cors: Cors,
    /// Whether accepted cross-origin requests may carry cookies
    /// (`Access-Control-Allow-Credentials: true`). Default: true, as python-socketio's
    /// `cors_credentials`: Node's `cors` default is false, but engine.io-client 3.x (socket.io
    /// 2.x) polls with `withCredentials` on, and its requests fail without it.
    pub cors_credentials: bool,
    /// Peers whose `X-Forwarded-*` headers are believed (by the same-origin check, and for the
    /// client's address). From any other peer they are ignored: anyone can send them.
    pub trusted_proxies: TrustedProxies,
    /// `Host` names the engine answers to; a request for another gets 403 (Engine.IO error 4).
    /// A server bound to loopback should list its names: a web page can reach it through
    /// DNS rebinding under a name of the attacker's otherwise.
    pub allowed_hosts: AllowedHosts,
    /// Whether Engine.IO v3 clients (socket.io-client 1.x/2.x) are served.
    pub allow_eio3: bool,
    /// Whether JSONP polling (`j=` requests of old browsers' socket.io-client 1.x/2.x with
    /// `forceJSONP`) is served. Off by default: a `<script>` request carries no `Origin`, so the
    /// origin check cannot stop a page of any site from opening a JSONP session with the
    /// visitor's cookies and reading what the server sends it.
    pub allow_jsonp: bool,
    /// Time a polling POST's body may take to arrive; a slower one is answered 408 and its
    /// session closed. A body is also abandoned as soon as its session closes.
    pub max_body_time: Duration,
    /// Bytes that the bodies of all POSTs being read may hold at once, across the engine (each
    /// is also bounded by `max_payload`). A POST that would go past it is answered 503 and its
    /// session closed: the client reconnects.
    pub max_body_memory: usize,
    /// Packets that may wait for a client to read them. **When full**, a volatile packet is
    /// dropped and any other packet closes the session (a client that far behind is gone or
    /// hostile; it reconnects and resynchronises). Messages handed over together and written at
    /// once count only for what the kernel did not take: that rest may pass the bound by less
    /// than one hand-over (a packet's attachments, or a batch of broadcasts read from Redis),
    /// and the next packet then closes the session.
    pub max_buffered_packets: usize,
    /// Packets sent in one polling response (python-engineio refuses more than 16).
    pub max_packets_per_poll: usize,
    /// Sessions this engine holds at once; a handshake past it is refused with Engine.IO error
    /// 3 ("Bad request", status 400) until sessions end.
    pub max_sessions: usize,
    /// Decides whether to let a handshake or upgrade in.
    pub allow_request: Option<AllowRequest>,
    /// Bytes a WebSocket reads per call, kept allocated per connection while it lives (larger
    /// messages grow it as needed). Small saves memory per idle connection; large saves reads
    /// for clients that send big messages.
    pub websocket_read_buffer: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/engine.io".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_payload: 1_000_000,
            transports: Transports::ALL,
            allow_upgrades: true,
            compression_threshold: Some(1024),
            cookie: None,
            cors: Cors::default(),
            cors_credentials: true,
            trusted_proxies: TrustedProxies::default(),
            allowed_hosts: AllowedHosts::default(),
            allow_eio3: true,
            allow_jsonp: false,
            max_body_time: Duration::from_secs(30),
            max_body_memory: 64 << 20,
            max_buffered_packets: 4096,
            max_packets_per_poll: 16,
            max_sessions: 100_000,
            allow_request: None,
            websocket_read_buffer: 512,
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("path", &self.path)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("max_payload", &self.max_payload)
            .field("transports", &self.transports)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("compression_threshold", &self.compression_threshold)
            .field("cookie", &self.cookie)
            .field("cors", &self.cors)
            .field("cors_credentials", &self.cors_credentials)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allow_eio3", &self.allow_eio3)
            .field("allow_jsonp", &self.allow_jsonp)
            .field("max_body_time", &self.max_body_time)
            .field("max_body_memory", &self.max_body_memory)
            .field("max_buffered_packets", &self.max_buffered_packets)
            .field("max_packets_per_poll", &self.max_packets_per_poll)
            .field("max_sessions", &self.max_sessions)
            .field("allow_request", &self.allow_request.is_some())
            .field("websocket_read_buffer", &self.websocket_read_buffer)
            .finish()
    }
}

impl EngineConfig {
    /// Sets [`EngineConfig::path`]; a trailing slash is dropped.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let mut p: String = path.into();
        while p.len() > 1 && p.ends_with('/') {
            p.pop();
        }
        if !p.starts_with('/') {
            p.insert(0, '/');
        }
        self.path = p;
        self
    }

    /// Sets [`EngineConfig::ping_interval`].
    pub fn with_ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }

    /// Sets [`EngineConfig::ping_timeout`].
    pub fn with_ping_timeout(mut self, d: Duration) -> Self {
        self.ping_timeout = d;
        self
    }

    /// Sets [`EngineConfig::upgrade_timeout`].
    pub fn with_upgrade_timeout(mut self, d: Duration) -> Self {
        self.upgrade_timeout = d;
        self
    }

    /// Sets [`EngineConfig::max_payload`].
    pub fn with_max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets [`EngineConfig::transports`].
    pub fn with_transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// Sets [`EngineConfig::allow_upgrades`].
    pub fn with_allow_upgrades(mut self, allow: bool) -> Self {
        self.allow_upgrades = allow;
        self
    }

    /// Sets [`EngineConfig::compression_threshold`].
    pub fn with_compression_threshold(mut self, threshold: Option<usize>) -> Self {
        self.compression_threshold = threshold;
        self
    }

    /// Sets [`EngineConfig::cookie`].
    pub fn with_cookie(mut self, cookie: Option<Cookie>) -> Self {
        self.cookie = cookie;
        self
    }

    /// Sets [`EngineConfig::cors`].
    pub fn with_cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// Sets [`EngineConfig::cors_credentials`].
    pub fn with_cors_credentials(mut self, credentials: bool) -> Self {
        self.cors_credentials = credentials;
        self
    }

    /// Sets [`EngineConfig::allow_eio3`].
    pub fn with_allow_eio3(mut self, allow: bool) -> Self {
        self.allow_eio3 = allow;
        self
    }

    /// Sets [`EngineConfig::trusted_proxies`].
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Sets [`EngineConfig::allowed_hosts`].
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Sets [`EngineConfig::allow_jsonp`].
    pub fn with_allow_jsonp(mut self, allow: bool) -> Self {
        self.allow_jsonp = allow;
        self
    }

    /// Sets [`EngineConfig::max_body_time`].
    pub fn with_max_body_time(mut self, d: Duration) -> Self {
        self.max_body_time = d;
        self
    }

    /// Sets [`EngineConfig::max_body_memory`].
    pub fn with_max_body_memory(mut self, bytes: usize) -> Self {
        self.max_body_memory = bytes;
        self
    }

    /// Sets [`EngineConfig::max_buffered_packets`] (at least 1).
    pub fn with_max_buffered_packets(mut self, n: usize) -> Self {
        self.max_buffered_packets = n.max(1);
        self
    }

    /// Sets [`EngineConfig::max_packets_per_poll`] (at least 1).
    pub fn with_max_packets_per_poll(mut self, n: usize) -> Self {
        self.max_packets_per_poll = n.max(1);
        self
    }

    /// Sets [`EngineConfig::max_sessions`].
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Sets [`EngineConfig::websocket_read_buffer`] (at least 64).
    pub fn with_websocket_read_buffer(mut self, bytes: usize) -> Self {
        self.websocket_read_buffer = bytes.max(64);
        self
    }

    /// Sets [`EngineConfig::allow_request`].
    pub fn with_allow_request(
        mut self,
        f: impl Fn(&Parts) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.allow_request = Some(Arc::new(f));
        self
    }
}
