//! The server side of the official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5.x): what
//! Node's `instrument(io, options)` does, so that the UI (served by the `socketlet` binary, or
//! the hosted one) shows this server's clients, sockets, rooms, events and load, and acts on
//! them.
//!
//! ```no_run
//! use socketlet::SocketIo;
//! use socketlet_ops::{AdminAuth, AdminConfig, AdminUi};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let io = SocketIo::new();
//! // The hash of the password ("changeit"), never the password itself; make one with
//! // `htpasswd -nbBC 10 "" 'the password' | cut -d: -f2` (Debian's apache2-utils).
//! let hash = "$2a$10$pAWERQVUHjhF4x1Co5pWY.VD.ZPjX85mgcpMLvtcCRJsvr45l7BqO";
//! let auth = AdminAuth::basic("admin", hash)?;
//! let admin = AdminUi::attach(&io, AdminConfig::new(auth))?;
//! assert_eq!(admin.namespace(), "/admin");
//! # Ok(())
//! # }
//! ```
//!
//! # What the UI gets
//!
//! The UI connects to the admin namespace (`/admin`) with `auth` `{username, password}`, or
//! `{sessionId}` when it comes back. The server answers, in order: `session` (a new session id,
//! after a password login), `config` `{supportedFeatures}`, and in development mode
//! `all_sockets` (every socket of every namespace, on every node). Then, on every node, to every
//! admin socket of the cluster: `server_stats` every 2 s (each node its own, with its
//! `serverId`), and in development mode `socket_connected`, `socket_updated` (transport
//! upgrades), `socket_disconnected`, `room_joined`, `room_left`, `event_received` and
//! `event_sent`. The UI's commands `emit`, `join`, `leave` and `_disconnect`, with the `filter`
//! it sends (a room, usually a socket's own id), act on the whole cluster through the adapter;
//! read-only mode registers none of them.
//!
//! In development mode every socket's data ([`Socket::data`](socketlet::Socket::data)) gets an
//! `_admin` key, `{clientId, transport}`, as Node puts it there: it is how other nodes (Node's
//! too) learn a remote socket's client and transport from `fetch_sockets`. The UI never shows
//! it; an application that replaces its sockets' data whole loses it (the UI then groups that
//! socket under a client of its own).
//!
//! # How it is built
//!
//! `observer.rs`: an [`Observer`](socketlet::Observer) that counts packets, bytes and
//! connections for `server_stats` (a few atomic adds), and in development mode turns what
//! happens into notes on a bounded queue; one task sends the notes to the admin namespace, so
//! nothing is emitted, serialized for the cluster or awaited where the server calls observers.
//! `auth.rs`: the login middleware (bcrypt on a blocking thread, a bounded number at once) and
//! the session stores (`redis_store.rs`: Node's Redis store, feature `redis`). `commands.rs`: the
//! UI's commands. `wire.rs`: the shapes the UI reads.

mod auth;
mod commands;
mod observer;
#[cfg(feature = "redis")]
mod redis_store;
mod wire;

pub use auth::{MemorySessionStore, SessionStore, StoreFuture};
#[cfg(feature = "redis")]
pub use redis_store::RedisSessionStore;

use observer::{AdminObserver, Counters, Note};
use serde_json::{json, Value};
use socketlet::{Socket, SocketIo, WeakSocketIo};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// The admin namespace's default name (Node's `namespaceName`).
pub const DEFAULT_NAMESPACE: &str = "/admin";
/// How often each node sends its `server_stats` (fixed at 2 s in Node).
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How many development-mode notes (connections, rooms, events) may wait to be sent to the
/// admin namespace; past it they are dropped and counted ([`AdminUi::dropped_notes`]).
pub const DEFAULT_NOTE_QUEUE: usize = 4096;
/// How many password checks (bcrypt) may run at once; more logins wait for a turn.
pub const DEFAULT_MAX_CONCURRENT_LOGINS: usize = 2;

/// How much the UI is told (Node's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AdminMode {
    /// Everything: the sockets, their rooms, every event in and out (feature `ALL_EVENTS`).
    /// Node's default (`process.env.NODE_ENV || "development"`). As in Node, it is for
    /// development: every event a socket sends or gets is copied to the admin namespace (a
    /// broadcast to 1,000 sockets makes 1,000 `event_sent`, through the adapter in a cluster;
    /// past the note queue they are dropped), and each socket has an outgoing listener, which
    /// takes broadcasts off their fastest path.
    #[default]
    Development,
    /// Only `server_stats` with counts (feature `AGGREGATED_EVENTS`): no sockets, no payloads,
    /// and nothing per event beyond a few atomic adds.
    Production,
}

impl AdminMode {
    /// `"development"` or `"production"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminMode::Development => "development",
            AdminMode::Production => "production",
        }
    }
}

impl std::str::FromStr for AdminMode {
    type Err = AdminError;

    fn from_str(s: &str) -> Result<Self, AdminError> {
        match s {
            "development" => Ok(AdminMode::Development),
            "production" => Ok(AdminMode::Production),
            other => Err(AdminError::Config(format!(
                "unknown admin mode {other:?} (development or production)"
            ))),
        }
    }
}

/// Who may use the admin namespace (Node's `auth` option, which has no default: it must be
/// given, or explicitly `false`).
#[derive(Clone)]
pub struct AdminAuth(AuthKind);

#[derive(Clone)]
enum AuthKind {
    None,
    Basic { username: String, hash: String },
}

impl AdminAuth {
    /// No authentication (Node's `auth: false`): anyone who reaches the server can watch it
    /// and, unless read-only, act on every socket.
    pub fn none() -> AdminAuth {
        AdminAuth(AuthKind::None)
    }

    /// Node's `{type: "basic", username, password}`: `password_hash` is a bcrypt hash
    /// (`$2a$`, `$2b$` or `$2y$`), as Node requires. Fails when it is not one.
    pub fn basic(
        username: impl Into<String>,
        password_hash: impl Into<String>,
    ) -> Result<AdminAuth, AdminError> {
        let hash = password_hash.into();
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(AdminError::Config(
                "the admin password must be a valid bcrypt hash ($2b$10$...)".into(),
            ));
        }
        Ok(AdminAuth(AuthKind::Basic {
            username: username.into(),
            hash,
        }))
    }

    /// Whether a login is needed.
    pub fn is_enabled(&self) -> bool {
        matches!(self.0, AuthKind::Basic { .. })
    }
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            AuthKind::None => f.write_str("AdminAuth::None"),
            AuthKind::Basic { username, .. } => f
                .debug_struct("AdminAuth::Basic")
                .field("username", username)
                .field("password_hash", &"***")
                .finish(),
        }
    }
}

/// The settings of [`AdminUi`]; the defaults are Node's `instrument()` options.
#[derive(Clone)]
#[non_exhaustive]
pub struct AdminConfig {
    /// The admin namespace. Default `/admin` ([`DEFAULT_NAMESPACE`]).
    pub namespace: String,
    /// Who may connect to it (no default, as in Node: see [`AdminConfig::new`]).
    pub auth: AdminAuth,
    /// Refuse the UI's commands (`emit`, `join`, `leave`, `_disconnect`): the UI only watches.
    /// Default `false`.
    pub readonly: bool,
    /// This node's id in the UI's list of servers. Default: the host name (as Node's, outside
    /// Node's cluster module). Give each node of a cluster on one host its own.
    pub server_id: Option<String>,
    /// What the UI is told. Default [`AdminMode::Development`] (Node's, when `NODE_ENV` is not
    /// set).
    pub mode: AdminMode,
    /// Where session ids live (Node's `store`). Default: a [`MemorySessionStore`] of this node;
    /// a UI that reconnects to another node must then log in again (unless the nodes share a
    /// store: `RedisSessionStore`, feature `redis`).
    pub store: Arc<dyn SessionStore>,
    /// How often `server_stats` goes out. Default 2 s ([`DEFAULT_STATS_INTERVAL`]).
    pub stats_interval: Duration,
    /// Development-mode notes waiting to be sent. Default [`DEFAULT_NOTE_QUEUE`].
    pub note_queue: usize,
    /// Password checks at once. Default [`DEFAULT_MAX_CONCURRENT_LOGINS`].
    pub max_concurrent_logins: usize,
}

impl AdminConfig {
    /// Node's defaults, with `auth`.
    pub fn new(auth: AdminAuth) -> AdminConfig {
        AdminConfig {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            auth,
            readonly: false,
            server_id: None,
            mode: AdminMode::default(),
            store: Arc::new(MemorySessionStore::new()),
            stats_interval: DEFAULT_STATS_INTERVAL,
            note_queue: DEFAULT_NOTE_QUEUE,
            max_concurrent_logins: DEFAULT_MAX_CONCURRENT_LOGINS,
        }
    }

    /// The admin namespace (a leading `/` is added when missing).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Read-only mode.
    pub fn with_readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// This node's id in the UI.
    pub fn with_server_id(mut self, server_id: impl Into<String>) -> Self {
        self.server_id = Some(server_id.into());
        self
    }

    /// The mode.
    pub fn with_mode(mut self, mode: AdminMode) -> Self {
        self.mode = mode;
        self
    }

    /// The session store.
    pub fn with_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = store;
        self
    }

    /// How often `server_stats` goes out (at least every 100 ms).
    pub fn with_stats_interval(mut self, interval: Duration) -> Self {
        self.stats_interval = interval;
        self
    }

    /// The bound of the development-mode note queue (at least 1).
    pub fn with_note_queue(mut self, bound: usize) -> Self {
        self.note_queue = bound;
        self
    }

    /// Password checks at once (at least 1).
    pub fn with_max_concurrent_logins(mut self, n: usize) -> Self {
        self.max_concurrent_logins = n;
        self
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("namespace", &self.namespace)
            .field("auth", &self.auth)
            .field("readonly", &self.readonly)
            .field("server_id", &self.server_id)
            .field("mode", &self.mode)
            .field("stats_interval", &self.stats_interval)
            .field("note_queue", &self.note_queue)
            .field("max_concurrent_logins", &self.max_concurrent_logins)
            .finish_non_exhaustive()
    }
}

/// Why the admin side could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// A setting is wrong (the message says which).
    Config(String),
    /// [`AdminUi::attach`] was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Config(why) => f.write_str(why),
            AdminError::NoRuntime => {
                f.write_str("the admin UI must be attached inside a tokio runtime")
            }
        }
    }
}

impl std::error::Error for AdminError {}

/// The features the UI may use, in Node's order.
fn supported_features(readonly: bool, mode: AdminMode) -> Vec<&'static str> {
    let mut features = if readonly {
        Vec::new()
    } else {
        // socketlet has the v4 operators (socketsJoin, socketsLeave, disconnectSockets).
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    features.push("AGGREGATED_EVENTS");
    if mode == AdminMode::Development {
        features.push("ALL_EVENTS");
    }
    features
}

/// What a new password login leaves on its socket, for the connection handler to send.
#[derive(Clone)]
struct NewSession(String);

struct Shared {
    io: WeakSocketIo,
    namespace: String,
    server_id: String,
    hostname: String,
    features: Vec<&'static str>,
    mode: AdminMode,
    readonly: bool,
    started: Instant,
    counters: Arc<Counters>,
    dropped: Arc<AtomicU64>,
}

/// The server side of the Admin UI on one node: see the [module](self) documentation.
#[derive(Clone)]
pub struct AdminUi {
    shared: Arc<Shared>,
}

impl fmt::Debug for AdminUi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminUi")
            .field("namespace", &self.shared.namespace)
            .field("server_id", &self.shared.server_id)
            .field("mode", &self.shared.mode)
            .field("readonly", &self.shared.readonly)
            .finish_non_exhaustive()
    }
}

impl AdminUi {
    /// Instruments `io` (Node's `instrument(io, options)`): creates the admin namespace with its
    /// login, observes the server, and starts sending `server_stats`. Call it inside a tokio
    /// runtime, once per server, before clients come (sockets already connected are not seen
    /// until they come back). The tasks it starts end when the server is dropped.
    pub fn attach(io: &SocketIo, config: AdminConfig) -> Result<AdminUi, AdminError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AdminError::NoRuntime)?;
        let namespace = if config.namespace.starts_with('/') {
            config.namespace.clone()
        } else {
            format!("/{}", config.namespace)
        };
        let hostname = wire::hostname();
        let shared = Arc::new(Shared {
            io: io.downgrade(),
            server_id: config.server_id.clone().unwrap_or_else(|| hostname.clone()),
            hostname,
            features: supported_features(config.readonly, config.mode),
            mode: config.mode,
            readonly: config.readonly,
            started: Instant::now(),
            counters: Arc::new(Counters::default()),
            dropped: Arc::new(AtomicU64::new(0)),
            namespace,
        });

        let notes = (config.mode == AdminMode::Development).then(|| {
            let (tx, rx) = mpsc::channel(config.note_queue.max(1));
            runtime.spawn(send_notes(shared.clone(), rx));
            tx
        });
        io.observe(Arc::new(AdminObserver::new(
            io.downgrade(),
            shared.namespace.clone(),
            shared.counters.clone(),
            notes,
            shared.dropped.clone(),
        )));

        let admin = io.of(&shared.namespace);
        if let AuthKind::Basic { username, hash } = &config.auth.0 {
            let login = Arc::new(auth::Login::new(
                username.clone(),
                hash.clone(),
                config.store.clone(),
                config.max_concurrent_logins,
            ));
            admin.use_middleware(move |socket: Socket| {
                let login = login.clone();
                async move {
                    if let Some(session) = login.check(socket.auth()).await? {
                        socket.extensions().insert(NewSession(session));
                    }
                    Ok(())
                }
            });
        } else {
            tracing::warn!(
                namespace = %shared.namespace,
                "the admin UI has no authentication: anyone who reaches the server can use it"
            );
        }
        let on_connect = shared.clone();
        admin.on_connect(move |socket: Socket| {
            let shared = on_connect.clone();
            // Listeners first, before any await (the UI may send a command at once).
            if !shared.readonly {
                commands::register(&socket, shared.io.clone());
            }
            async move {
                if let Some(NewSession(id)) = socket.extensions().remove::<NewSession>() {
                    // Node sends it from the middleware, before the CONNECT, where the UI
                    // (which listens once connected) misses it; after the CONNECT it is kept.
                    let _ = socket.emit("session", id);
                }
                let _ = socket.emit("config", json!({ "supportedFeatures": shared.features }));
                if shared.mode == AdminMode::Development {
                    if let Some(io) = shared.io.upgrade() {
                        let sockets = wire::all_sockets(&io).await;
                        let _ = socket.emit("all_sockets", Value::Array(sockets));
                    }
                }
            }
        });

        let interval = config.stats_interval.max(Duration::from_millis(100));
        runtime.spawn(send_stats(shared.clone(), interval));
        tracing::info!(
            namespace = %shared.namespace,
            server_id = %shared.server_id,
            mode = shared.mode.as_str(),
            readonly = shared.readonly,
            "admin UI server side attached"
        );
        Ok(AdminUi { shared })
    }

    /// The admin namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// This node's id in the UI.
    pub fn server_id(&self) -> &str {
        &self.shared.server_id
    }

    /// The features the UI is told of (`config.supportedFeatures`).
    pub fn supported_features(&self) -> &[&'static str] {
        &self.shared.features
    }

    /// Development-mode notes dropped because the queue was full (a burst of events faster
    /// than they could be sent to the admin namespace).
    pub fn dropped_notes(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// This node's `server_stats` as it would be sent now (the aggregated events are not taken).
    pub fn server_stats(&self) -> Option<Value> {
        let io = self.shared.io.upgrade()?;
        Some(stats(&self.shared, &io, Vec::new()))
    }
}

/// This node's `server_stats` with `aggregated` events.
fn stats(shared: &Shared, io: &SocketIo, aggregated: Vec<wire::AggregatedEvent>) -> Value {
    let mut names = io.namespace_names();
    names.sort();
    let namespaces: Vec<Value> = names
        .iter()
        .filter_map(|name| io.namespace(name))
        .map(|ns| json!({"name": ns.name(), "socketsCount": ns.local().socket_count()}))
        .collect();
    json!({
        "serverId": shared.server_id,
        "hostname": shared.hostname,
        "pid": std::process::id(),
        "uptime": shared.started.elapsed().as_secs_f64(),
        "clientsCount": io.engine().session_count(),
        "pollingClientsCount": shared.counters.polling_clients(),
        "aggregatedEvents": aggregated,
        "namespaces": namespaces,
    })
}

/// Sends `server_stats` to the admin namespace (of the whole cluster) every `interval`, the
/// first at once (as Node), until the server is gone.
async fn send_stats(shared: Arc<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        ticker.tick().await;
        let Some(io) = shared.io.upgrade() else {
            return;
        };
        let Some(admin) = io.namespace(&shared.namespace) else {
            return;
        };
        let aggregated = shared.counters.take(SystemTime::now());
        let stats = stats(&shared, &io, aggregated);
        if let Err(e) = admin.emit("server_stats", stats) {
            tracing::debug!("server_stats not sent: {e}");
        }
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                "admin UI: notes dropped, the queue was full (a burst of events)"
            );
            reported = dropped;
        }
    }
}

/// Sends the development-mode notes to the admin namespace, in order, until the server (and so
/// the observer and every sender) is gone.
async fn send_notes(shared: Arc<Shared>, mut rx: mpsc::Receiver<Note>) {
    while let Some(note) = rx.recv().await {
        let Some(io) = shared.io.upgrade() else {
            return;
        };
        let Some(admin) = io.namespace(&shared.namespace) else {
            return;
        };
        for (event, data) in note.into_events() {
            if let Err(e) = admin.emit(event, data) {
                tracing::debug!("admin {event} not sent: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_node() {
        assert_eq!(
            supported_features(false, AdminMode::Development),
            [
                "EMIT",
                "JOIN",
                "LEAVE",
                "DISCONNECT",
                "MJOIN",
                "MLEAVE",
                "MDISCONNECT",
                "AGGREGATED_EVENTS",
                "ALL_EVENTS"
            ]
        );
        assert_eq!(
            supported_features(true, AdminMode::Production),
            ["AGGREGATED_EVENTS"]
        );
        assert_eq!(
            supported_features(true, AdminMode::Development),
            ["AGGREGATED_EVENTS", "ALL_EVENTS"]
        );
    }

    #[test]
    fn basic_auth_needs_a_bcrypt_hash() {
        assert!(AdminAuth::basic("admin", "secret").is_err());
        assert!(AdminAuth::basic("admin", "").is_err());
        let auth = AdminAuth::basic(
            "admin",
            "$2a$04$NBNjxNr6W0K4l8S8HcTsHu6ZiY.PP9Vn8quLLG2H5pOC3LmRnA.dS",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(auth.is_enabled());
        assert!(!format!("{auth:?}").contains("$2b$"), "the hash is masked");
        assert!(!AdminAuth::none().is_enabled());
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "production".parse::<AdminMode>().ok(),
            Some(AdminMode::Production)
        );
        assert_eq!(
            "development".parse::<AdminMode>().ok(),
            Some(AdminMode::Development)
        );
        assert!("dev".parse::<AdminMode>().is_err());
        assert_eq!(AdminMode::default(), AdminMode::Development);
    }

    #[test]
    fn defaults_are_nodes() {
        let c = AdminConfig::new(AdminAuth::none());
        assert_eq!(c.namespace, "/admin");
        assert!(!c.readonly);
        assert_eq!(c.server_id, None);
        assert_eq!(c.mode, AdminMode::Development);
        assert_eq!(c.stats_interval, Duration::from_secs(2));
    }
}
