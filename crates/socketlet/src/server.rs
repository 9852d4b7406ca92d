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
use socketlet_engine::{
    CloseReason, Engine, EngineHandler, Message, Sid, SidHash, Socket as EngineSocket,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

#[derive(Clone)]
struct DynamicNamespace {
    predicate: NamespacePredicate,
    handlers: Arc<Handlers>,
    parent: Arc<ParentAdapter>,
}

/// A child of a dynamic namespace, as the server keeps it: its parent, and how many CONNECTs
/// to it are under way. A child that a CONNECT created and that has no socket once every
/// CONNECT under way is over (they were refused) is removed, so that names a client makes up
/// leave nothing behind. `pending` only grows with the namespace table's lock held (read or
/// write), and the removal checks it with the write lock: no CONNECT can slip in between.
struct Child {
    parent: Arc<ParentAdapter>,
    pending: AtomicUsize,
    /// A socket joined it once (a child that had sockets stays, as in Node).
    used: AtomicBool,
}

/// The namespace table.
#[derive(Default)]
struct Namespaces {
    map: HashMap<String, (Namespace, Option<Arc<Child>>)>,
    /// How many entries are children of dynamic namespaces.
    children: usize,
}

/// A CONNECT under way to a namespace (see [`ServerInner::enter_namespace`]); when dropped, a
/// child of a dynamic namespace that no socket joined is removed.
pub(crate) struct Entered {
    ns: Namespace,
    child: Option<Arc<Child>>,
    server: Weak<ServerInner>,
}

impl Entered {
    /// The namespace.
    pub(crate) fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// A socket joined the namespace: it stays.
    pub(crate) fn joined(&self) {
        if let Some(child) = &self.child {
            child.used.store(true, Ordering::Release);
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        if child.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(server) = self.server.upgrade() {
                server.remove_if_unused(&self.ns, &child);
            }
        }
    }
}

pub(crate) struct ServerInner {
    pub(crate) config: SocketIoConfig,
    namespaces: RwLock<Namespaces>,
    /// Dynamic namespaces: which names they take, and the parent whose adapter reaches the
    /// children.
    dynamic: RwLock<Vec<DynamicNamespace>>,
    clients: RwLock<HashMap<Sid, Arc<Client>, SidHash>>,
    weak: Weak<ServerInner>,
    /// Whether the `connect_timeout` sweep runs (started with the first connection).
    sweeping: std::sync::atomic::AtomicBool,
    /// The bound on child namespaces was reached once (warned of once; clients can repeat it).
    children_full: AtomicBool,
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

    /// The namespace called `name`: a static one, or a new child of a matching dynamic one
    /// (which stays).
    pub(crate) fn namespace_for(&self, name: &str) -> Option<Namespace> {
        self.find_or_make(name, false).map(|(ns, _)| ns)
    }

    /// The namespace a CONNECT to `name` goes to, as [`ServerInner::namespace_for`], held for
    /// the CONNECT's time: a child it created that no socket joined goes when the CONNECT is
    /// over (the [`Entered`] dropped).
    pub(crate) fn enter_namespace(&self, name: &str) -> Option<Entered> {
        let (ns, child) = self.find_or_make(name, true)?;
        Some(Entered {
            ns,
            child,
            server: self.weak.clone(),
        })
    }

    /// Finds or makes the namespace `name`; with `enter`, counts a CONNECT under way to it if
    /// it is a child. No user code (predicates, the adapter factory) runs with a lock held.
    fn find_or_make(&self, name: &str, enter: bool) -> Option<(Namespace, Option<Arc<Child>>)> {
        let found = |table: &Namespaces| {
            table.map.get(name).map(|(ns, child)| {
                let child = child.clone().filter(|_| enter);
                if let Some(child) = &child {
                    child.pending.fetch_add(1, Ordering::AcqRel);
                }
                (ns.clone(), child)
            })
        };
        if let Some(found) = found(&read(&self.namespaces)) {
            return Some(found);
        }
        let dynamic: Vec<DynamicNamespace> = read(&self.dynamic).clone();
        let parent = dynamic.into_iter().find(|d| (d.predicate)(name))?;
        let max = self.config.max_child_namespaces;
        if read(&self.namespaces).children >= max {
            if self.children_full.swap(true, Ordering::Relaxed) {
                tracing::debug!(nsp = %name, max, "too many child namespaces; CONNECT refused");
            } else {
                tracing::warn!(nsp = %name, max, "too many child namespaces; CONNECTs to new ones are refused (max_child_namespaces)");
            }
            return None;
        }
        let ns = self.make_namespace(name, parent.handlers);
        let mut table = write(&self.namespaces);
        if let Some(found) = found(&table) {
            // Made meanwhile by another CONNECT: that one stands, and the adapter made here
            // lets go of what it took. (The bound is checked once, before the namespace is
            // made: CONNECTs under way at once may pass it by a few.)
            drop(table);
            ns.adapter().namespace_removed(ns.local());
            return Some(found);
        }
        let child = Arc::new(Child {
            parent: parent.parent.clone(),
            pending: AtomicUsize::new(usize::from(enter)),
            used: AtomicBool::new(false),
        });
        table
            .map
            .insert(name.to_owned(), (ns.clone(), Some(child.clone())));
        table.children += 1;
        drop(table);
        // Before the entry can go: it cannot while this CONNECT is counted, and without one
        // (`namespace_for`) it never goes.
        child.parent.add_child(ns.clone());
        Some((ns, Some(child).filter(|_| enter)))
    }

    /// Removes the child `ns` if no socket joined it and no CONNECT to it is under way.
    fn remove_if_unused(&self, ns: &Namespace, child: &Arc<Child>) {
        let mut table = write(&self.namespaces);
        let unused = match table.map.get(ns.name()) {
            Some((_, Some(c))) => {
                Arc::ptr_eq(c, child)
                    && c.pending.load(Ordering::Acquire) == 0
                    && !c.used.load(Ordering::Acquire)
                    && ns.local().socket_count() == 0
            }
            _ => false,
        };
        if !unused {
            return;
        }
        table.map.remove(ns.name());
        table.children -= 1;
        drop(table);
        child.parent.remove_child(ns);
        ns.adapter().namespace_removed(ns.local());
        tracing::debug!(nsp = %ns.name(), "child namespace removed: no socket joined it");
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
            namespaces: RwLock::default(),
            dynamic: RwLock::new(Vec::new()),
            clients: RwLock::new(HashMap::default()),
            weak: weak.clone(),
            sweeping: Default::default(),
            children_full: AtomicBool::new(false),
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
        if let Some((ns, _)) = read(&self.inner.namespaces).map.get(&name) {
            return ns.clone();
        }
        // The adapter factory runs with no lock held; if another call made the namespace
        // meanwhile, that one stands.
        let made = self.inner.make_namespace(&name, Arc::default());
        let mut table = write(&self.inner.namespaces);
        if let Some((ns, _)) = table.map.get(&name) {
            let ns = ns.clone();
            drop(table);
            made.adapter().namespace_removed(made.local());
            return ns;
        }
        table.map.insert(name, (made.clone(), None));
        made
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
        read(&self.inner.namespaces)
            .map
            .get(name)
            .map(|(ns, _)| ns.clone())
    }

    /// The names of the namespaces that exist.
    pub fn namespace_names(&self) -> Vec<String> {
        read(&self.inner.namespaces).map.keys().cloned().collect()
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
