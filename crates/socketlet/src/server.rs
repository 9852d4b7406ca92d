//! The server: namespaces, and the glue between the engine and the clients.

use crate::adapter::{ParentAdapter, Room};
use crate::client::Client;
use crate::config::{Builder, SocketIoConfig};
use crate::data::IntoArgs;
use crate::error::EmitError;
use crate::namespace::{Handlers, Namespace, NamespacePredicate, NsSettings};
use crate::observer::{Hub, Observer};
use crate::operators::BroadcastOperator;
use crate::service::SocketIoService;
use socketlet_engine::sync::{read, write};
use socketlet_engine::{CloseReason, Engine, EngineHandler, Message, Sid, Socket as EngineSocket};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

struct DynamicNamespace {
    predicate: NamespacePredicate,
    handlers: Arc<Handlers>,
    parent: Arc<ParentAdapter>,
}

pub(crate) struct ServerInner {
    pub(crate) config: SocketIoConfig,
    namespaces: RwLock<HashMap<String, Namespace>>,
    /// Dynamic namespaces: which names they take, and the parent whose adapter reaches the
    /// children.
    dynamic: RwLock<Vec<DynamicNamespace>>,
    clients: RwLock<HashMap<Sid, Arc<Client>>>,
    weak: Weak<ServerInner>,
    /// Whether the `connect_timeout` sweep runs (started with the first connection).
    sweeping: std::sync::atomic::AtomicBool,
    /// The observers, shared with every namespace.
    hub: Arc<Hub>,
}

/// Closes the connections that joined no namespace within `connect_timeout`. One task per
/// server instead of a timer per connection: it looks every `connect_timeout / 50` (between
/// 100 ms and 1 s), so a connection is closed at most that late.
async fn sweep_unconnected(server: Weak<ServerInner>) {
    loop {
        let Some(me) = server.upgrade() else {
            return;
        };
        let timeout = me.config.connect_timeout;
        let tick = (timeout / 50).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(1),
        );
        let now = tokio::time::Instant::now();
        let late: Vec<Arc<Client>> = read(&me.clients)
            .values()
            .filter(|c| c.has_no_namespace() && now.duration_since(c.opened()) >= timeout)
            .cloned()
            .collect();
        drop(me);
        for client in late {
            tracing::debug!(sid = %client.engine().sid(), "no namespace joined in time");
            client.engine().close();
        }
        tokio::time::sleep(tick).await;
    }
}

impl ServerInner {
    fn make_namespace(&self, name: &str, handlers: Arc<Handlers>) -> Namespace {
        Namespace::new(
            name.to_owned(),
            handlers,
            (self.config.adapter)(name),
            NsSettings::of(&self.config),
            self.hub.clone(),
        )
    }

    /// The namespace called `name`: a static one, or a new child of a matching dynamic one.
    pub(crate) fn namespace_for(&self, name: &str) -> Option<Namespace> {
        if let Some(ns) = read(&self.namespaces).get(name) {
            return Some(ns.clone());
        }
        let (handlers, parent) = read(&self.dynamic)
            .iter()
            .find(|d| (d.predicate)(name))
            .map(|d| (d.handlers.clone(), d.parent.clone()))?;
        let mut map = write(&self.namespaces);
        if let Some(ns) = map.get(name) {
            return Some(ns.clone());
        }
        let ns = self.make_namespace(name, handlers);
        map.insert(name.to_owned(), ns.clone());
        drop(map);
        parent.add_child(ns.clone());
        Some(ns)
    }

    fn me(&self) -> Option<Arc<ServerInner>> {
        self.weak.upgrade()
    }

    fn client(&self, sid: Sid) -> Option<Arc<Client>> {
        read(&self.clients).get(&sid).cloned()
    }
}

impl EngineHandler for ServerInner {
    fn on_open(&self, socket: &Arc<EngineSocket>) {
        let Some(me) = self.me() else {
            return;
        };
        let client = Client::new(socket.clone(), &me);
        write(&self.clients).insert(socket.sid(), client.clone());
        self.hub.each(|o| o.connection_opened(socket));
        if client.protocol() == socketlet_socketio_proto::ProtocolVersion::V4 {
            // Protocol v4 clients are connected to `/` as soon as the connection opens.
            client.connect("/", None);
        }
        if !self
            .sweeping
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tokio::spawn(sweep_unconnected(self.weak.clone()));
        }
    }

    fn on_message(&self, socket: &Arc<EngineSocket>, msg: Message) {
        if let Some(client) = self.client(socket.sid()) {
            client.on_message(msg);
        }
    }

    fn on_close(&self, socket: &Arc<EngineSocket>, reason: CloseReason) {
        let client = write(&self.clients).remove(&socket.sid());
        if let Some(client) = client {
            client.on_close(reason);
        }
        self.hub.each(|o| o.connection_closed(socket, reason));
    }

    fn on_upgrade(&self, socket: &Arc<EngineSocket>) {
        self.hub.each(|o| o.connection_upgraded(socket));
    }
}

/// A Socket.IO server. Cheap to clone and `Send + 'static`: hand clones to background tasks so
/// they can emit to sockets and rooms at any time.
///
/// ```
/// use socketlet::{AckSender, Data, Socket, SocketIo};
///
/// let io = SocketIo::new();
/// io.of("/").on_connect(|socket: Socket| async move {
///     socket.on("echo", |data: Data, ack: AckSender| async move {
///         let _ = ack.send(data);
///     });
/// });
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<ServerInner>,
    engine: Engine,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for SocketIo {
    fn default() -> Self {
        SocketIo::new()
    }
}

impl SocketIo {
    /// A server with the default settings.
    pub fn new() -> SocketIo {
        SocketIo::with_config(SocketIoConfig::default())
    }

    /// A builder for the settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A server with these settings.
    pub fn with_config(config: SocketIoConfig) -> SocketIo {
        let inner = Arc::new_cyclic(|weak| ServerInner {
            config,
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
            clients: RwLock::new(HashMap::new()),
            weak: weak.clone(),
            sweeping: Default::default(),
            hub: Arc::default(),
        });
        let engine = Engine::new(inner.config.engine.clone(), inner.clone());
        let io = SocketIo { inner, engine };
        // As in Node, `/` always exists: clients may connect to it (and v4 clients are connected
        // to it implicitly) even if the application never declared it.
        io.of("/");
        io
    }

    /// The settings.
    pub fn config(&self) -> &SocketIoConfig {
        &self.inner.config
    }

    /// The Engine.IO engine underneath.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The namespace `name`, created if needed.
    pub fn of(&self, name: &str) -> Namespace {
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        let mut map = write(&self.inner.namespaces);
        map.entry(name.clone())
            .or_insert_with(|| self.inner.make_namespace(&name, Arc::default()))
            .clone()
    }

    /// A handle that does not keep the server alive (for long-lived helpers such as cluster
    /// adapters, which the server itself holds).
    pub fn downgrade(&self) -> WeakSocketIo {
        WeakSocketIo {
            inner: Arc::downgrade(&self.inner),
            engine: self.engine.downgrade(),
        }
    }

    /// The namespace a client connecting to `name` joins: a static one, or a child of a
    /// dynamic namespace whose predicate accepts the name (created if needed, with the parent's
    /// middlewares and handlers). `None` when no client could connect to `name`. Unlike
    /// [`SocketIo::of`], it never makes a static namespace (which would bypass a dynamic
    /// parent's middlewares).
    pub fn resolve(&self, name: &str) -> Option<Namespace> {
        self.inner.namespace_for(name)
    }

    /// The namespace `name` if it exists (unlike [`SocketIo::of`], never creates one).
    pub fn namespace(&self, name: &str) -> Option<Namespace> {
        read(&self.inner.namespaces).get(name).cloned()
    }

    /// The names of the namespaces that exist.
    pub fn namespace_names(&self) -> Vec<String> {
        read(&self.inner.namespaces).keys().cloned().collect()
    }

    /// A dynamic namespace: every name `predicate` accepts becomes a namespace on its first
    /// connection (a child), sharing the middlewares and connection handler set on the
    /// returned parent. As in Node, what the parent emits, and every operator on it (`to`,
    /// `except`, `fetch_sockets`, `sockets_join`, `disconnect_sockets`, ...), reaches every
    /// child, through each child's adapter (so across the cluster). Clients cannot connect to
    /// the parent itself, and it has no adapter of its own.
    ///
    /// ```
    /// let io = socketlet::SocketIo::new();
    /// let workspaces = io.dynamic(|name| name.starts_with("/workspace-"));
    /// workspaces.on_connect(|socket: socketlet::Socket| async move {
    ///     let _ = socket.emit("welcome", socket.ns().name());
    /// });
    /// // Later: to every socket of every workspace.
    /// let _ = workspaces.emit("maintenance", "in 5 minutes");
    /// ```
    pub fn dynamic<F>(&self, predicate: F) -> Namespace
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        let handlers: Arc<Handlers> = Arc::default();
        let parent = Arc::new(ParentAdapter::default());
        let mut dynamic = write(&self.inner.dynamic);
        let name = format!("/_{}", dynamic.len());
        dynamic.push(DynamicNamespace {
            predicate: Arc::new(predicate),
            handlers: handlers.clone(),
            parent: parent.clone(),
        });
        // The parent keeps no sessions: recovery belongs to each child.
        let mut settings = NsSettings::of(&self.inner.config);
        settings.recovery = None;
        Namespace::new(name, handlers, parent, settings, self.inner.hub.clone())
    }

    /// Adds an observer: it hears of connections, sockets, rooms and packets from now on (see
    /// [`Observer`]).
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.inner.hub.add(observer);
    }

    /// A broadcast to the sockets of `/` in `room`.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.of("/").to(room)
    }

    /// Emits to every socket of `/` (any `Serialize` value is one argument; a [`Data`] is
    /// sent as it is).
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        self.of("/").emit(event, args)
    }

    /// The server as a tower service (404 for paths that are not the server's).
    pub fn service(&self) -> SocketIoService {
        SocketIoService::new(self.clone())
    }

    /// Closes every connection (clients are told, and see reason `server shutting down`).
    pub fn close(&self) {
        self.engine.close_all(CloseReason::ServerShutdown);
    }
}

/// A [`SocketIo`] handle that does not keep the server alive; see [`SocketIo::downgrade`].
#[derive(Clone)]
pub struct WeakSocketIo {
    inner: Weak<ServerInner>,
    engine: socketlet_engine::WeakEngine,
}

impl std::fmt::Debug for WeakSocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakSocketIo")
    }
}

impl WeakSocketIo {
    /// The server, if it still exists.
    pub fn upgrade(&self) -> Option<SocketIo> {
        Some(SocketIo {
            inner: self.inner.upgrade()?,
            engine: self.engine.upgrade()?,
        })
    }
}
