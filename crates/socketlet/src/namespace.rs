//! Namespaces: their middlewares and connection handlers, and the operators that reach their
//! sockets. This node's sockets and rooms are the namespace's [`LocalNamespace`].

use crate::adapter::{Adapter, Room};
use crate::data::{Data, IntoArgs};
use crate::error::{ConnectError, EmitError};
use crate::handler::HandlerFuture;
use crate::info::SocketInfo;
use crate::local::LocalNamespace;
use crate::observer::Hub;
use crate::operators::BroadcastOperator;
use crate::socket::Socket;
use socketlet_engine::sync::{read, write};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

pub(crate) type Middleware = Arc<
    dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>> + Send + Sync,
>;
pub(crate) type ConnectHandler = Arc<dyn Fn(Socket) -> HandlerFuture + Send + Sync>;
pub(crate) type ServerSideHandler = Arc<dyn Fn(String, Data) -> HandlerFuture + Send + Sync>;

/// What a namespace does with new connections. Shared by the children of a dynamic namespace.
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) middlewares: RwLock<Vec<Middleware>>,
    pub(crate) on_connect: RwLock<Vec<ConnectHandler>>,
    pub(crate) server_side: RwLock<Vec<ServerSideHandler>>,
}

/// What every namespace of a server shares of its settings.
#[derive(Clone)]
pub(crate) struct NsSettings {
    pub(crate) ack_timeout: Duration,
    /// The engine's trusted proxies, for the client address in handshakes.
    pub(crate) trusted: socketlet_engine::TrustedProxies,
    pub(crate) parser: crate::config::Parser,
    pub(crate) recovery: Option<crate::config::RecoveryConfig>,
}

impl NsSettings {
    pub(crate) fn of(config: &crate::config::SocketIoConfig) -> NsSettings {
        NsSettings {
            ack_timeout: config.ack_timeout,
            trusted: config.engine.trusted_proxies.clone(),
            parser: config.parser,
            recovery: config.recovery.clone(),
        }
    }
}

pub(crate) struct NsInner {
    handlers: Arc<Handlers>,
    settings: NsSettings,
    local: LocalNamespace,
    adapter: Arc<dyn Adapter>,
}

/// A namespace (`/`, `/admin`, ...). Cheap to clone; `Send + 'static`, so background tasks can
/// keep one and emit at any time.
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<NsInner>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name())
            .field("local_sockets", &self.inner.local.socket_count())
            .finish()
    }
}

impl Namespace {
    pub(crate) fn new(
        name: String,
        handlers: Arc<Handlers>,
        adapter: Arc<dyn Adapter>,
        settings: NsSettings,
        hub: Arc<Hub>,
    ) -> Namespace {
        // With recovery on, an adapter that keeps no sessions gets an in-memory store.
        let adapter = match &settings.recovery {
            Some(recovery) if !adapter.keeps_sessions() => Arc::new(
                crate::adapter::session::SessionAware::new(adapter, recovery.clone()),
            ) as Arc<dyn Adapter>,
            _ => adapter,
        };
        Namespace {
            inner: Arc::new(NsInner {
                handlers,
                local: LocalNamespace::new(name, hub, settings.parser),
                settings,
                adapter,
            }),
        }
    }

    /// Connection state recovery, when on.
    pub(crate) fn recovery(&self) -> Option<&crate::config::RecoveryConfig> {
        self.inner.settings.recovery.as_ref()
    }

    /// The namespace's name, starting with `/`.
    pub fn name(&self) -> &str {
        self.inner.local.name()
    }

    /// Adds a connect middleware. Middlewares run in order for every connection to this
    /// namespace, before the connection handlers; the first `Err` refuses the connection with
    /// a CONNECT_ERROR carrying its message and data. A middleware may store state on the
    /// socket ([`Socket::extensions`]) for the handlers.
    pub fn use_middleware<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        let mw: Middleware = Arc::new(move |s| Box::pin(f(s)));
        write(&self.inner.handlers.middlewares).push(mw);
        self
    }

    /// Adds a connection handler (as Node adds `connection` listeners: each one registered
    /// runs, in order). Handlers run once per connected socket, right after the client is told
    /// it is connected.
    ///
    /// Events the client sends meanwhile wait until every connection handler has had its first
    /// poll: listeners registered before a handler's first `.await` see every event. Awaiting
    /// is fine (the rest of the handler runs as a task), but register listeners first.
    pub fn on_connect<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: ConnectHandler = Arc::new(move |s| Box::pin(f(s)));
        write(&self.inner.handlers.on_connect).push(h);
        self
    }

    pub(crate) fn handlers(&self) -> &Handlers {
        &self.inner.handlers
    }

    /// The namespace's adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.inner.adapter
    }

    /// This node's part of the namespace: its sockets and rooms (what adapters work on).
    pub fn local(&self) -> &LocalNamespace {
        &self.inner.local
    }

    pub(crate) fn trusted_proxies(&self) -> &socketlet_engine::TrustedProxies {
        &self.inner.settings.trusted
    }

    pub(crate) fn ack_timeout(&self) -> Duration {
        self.inner.settings.ack_timeout
    }

    /// A broadcast to every socket of the namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// A broadcast to the sockets in `room`.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Same as [`Namespace::to`].
    pub fn in_(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// A broadcast to every socket except those in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().except(room)
    }

    /// Emits an event to every socket of the namespace (any `Serialize` value is one
    /// argument; a [`Data`] is sent as it is).
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        self.broadcast().emit(event, args)
    }

    /// Describes every socket of the namespace, on every node.
    pub async fn fetch_sockets(&self) -> Result<Vec<SocketInfo>, crate::adapter::AdapterError> {
        self.broadcast().fetch_sockets().await
    }

    /// A socket of this node by its id.
    pub fn get_socket(&self, id: &str) -> Option<Socket> {
        self.inner.local.socket(id)
    }

    /// Sends an event to the other nodes of the cluster (not to clients, not to this node), where
    /// the handlers added with [`Namespace::on_server_side_emit`] receive it.
    pub fn server_side_emit(
        &self,
        event: &str,
        args: impl IntoArgs,
    ) -> Result<(), crate::adapter::AdapterError> {
        let data = args.into_args().map_err(|e| {
            crate::adapter::AdapterError::with_source("the arguments do not serialize", e)
        })?;
        self.adapter().server_side_emit(self.local(), event, data)
    }

    /// Adds a handler of events sent by other nodes with [`Namespace::server_side_emit`].
    pub fn on_server_side_emit<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(String, Data) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: ServerSideHandler = Arc::new(move |event, data| Box::pin(f(event, data)));
        write(&self.inner.handlers.server_side).push(h);
        self
    }

    /// Hands an event from another node to the server-side handlers (for adapters).
    pub fn deliver_server_side_emit(&self, event: &str, data: Data) {
        let handlers = read(&self.inner.handlers.server_side).clone();
        for h in handlers {
            crate::runner::run_boxed(h(event.to_owned(), data.clone()));
        }
    }
}

/// A predicate that decides whether a namespace name belongs to a dynamic namespace.
pub(crate) type NamespacePredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;
