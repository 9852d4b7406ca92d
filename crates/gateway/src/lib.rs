//! socketlet as a gateway for a backend in any language: the backend authenticates connections
//! and handles events through HTTP hooks, and pushes to clients through an HTTP API.
//!
//! ```no_run
//! use socketlet::SocketIo;
//! use socketlet_gateway::{Gateway, GatewayConfig, HookConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let io = SocketIo::new();
//! let hooks = HookConfig::default()
//!     .with_connect(Some("http://127.0.0.1:8000/socketlet/connect".parse().unwrap()))
//!     .with_event(Some("http://127.0.0.1:8000/socketlet/event".parse().unwrap()))
//!     .with_secret(Some("shared secret".into()));
//! let gateway = Gateway::new(
//!     &io,
//!     GatewayConfig::default().with_api_keys(["api key"]).with_hooks(hooks),
//! );
//! // Every namespace a client connects to goes through the hooks.
//! gateway.attach_all();
//! // The API under /api/, in front of Socket.IO.
//! let service = gateway.api_service(io.service());
//! let listener = socketlet::bind("127.0.0.1:3000".parse().unwrap())?;
//! socketlet::serve(listener, service, std::future::pending()).await
//! # }
//! ```
//!
//! # How this crate is built
//!
//! It uses socketlet's public API only: a middleware and handlers on the namespaces it serves
//! (`hooks.rs`), operators for the API (`api.rs`, whose methods the OpenAPI document
//! `openapi.json` describes), and an HTTP client with a pool, signatures, a timeout and a bound
//! on requests in flight (`client.rs`). `data.rs` turns event arguments into JSON with base64
//! attachments and back. Signatures: [`client::sign`].

mod api;
pub mod client;
mod config;
mod data;
mod hooks;

pub use api::{ApiError, OPENAPI};
pub use client::{sign, HookError, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use config::{EventFilter, GatewayConfig, HookConfig, HookObserver, HookObserverFn};
pub use data::WireError;

use bytes::Bytes;
use http::{Request, Response};
use socketlet::{
    box_response, call_inner, BoxError, InnerService, ResponseBody, ServiceFuture, SocketIo,
};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// A gateway: the hooks it puts on namespaces and the API it answers. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    io: SocketIo,
    config: GatewayConfig,
    api_keys: Vec<[u8; 32]>,
    warned: api::Warned,
    hooks: Arc<hooks::Hooks>,
    /// The hooks of namespaces that have their own.
    namespace_hooks: std::collections::BTreeMap<String, Arc<hooks::Hooks>>,
    /// Namespaces the API created (see [`GatewayConfig::api_max_new_namespaces`]).
    api_namespaces: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("api", &self.api_enabled())
            .field("hooks", &self.inner.config.hooks.any())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for `io`. Nothing is attached yet: see [`Gateway::attach`] and
    /// [`Gateway::attach_all`].
    pub fn new(io: &SocketIo, config: GatewayConfig) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                io: io.clone(),
                api_keys: api::digest_keys(&config.api_keys),
                hooks: hooks::Hooks::new(config.hooks.clone()),
                namespace_hooks: config
                    .namespaces
                    .iter()
                    .map(|(name, hooks)| (name.clone(), hooks::Hooks::new(hooks.clone())))
                    .collect(),
                config,
                warned: Default::default(),
                api_namespaces: Default::default(),
            }),
        }
    }

    /// Puts the hooks on a namespace (for a dynamic one, on its children): those
    /// [`GatewayConfig::namespaces`] gives its name, else [`GatewayConfig::hooks`].
    pub fn attach(&self, ns: &socketlet::Namespace) {
        self.inner
            .namespace_hooks
            .get(ns.name())
            .unwrap_or(&self.inner.hooks)
            .attach(ns);
    }

    /// Puts the hooks on `/` and on the namespaces that have their own, and makes every other
    /// namespace a client asks for a child of a dynamic namespace with the hooks (the backend's
    /// connect hook decides who may join what; without a connect hook, any namespace is open).
    pub fn attach_all(&self) {
        self.attach(&self.inner.io.of("/"));
        for name in self.inner.namespace_hooks.keys() {
            if name != "/" {
                self.attach(&self.inner.io.of(name));
            }
        }
        let named: std::collections::BTreeSet<String> =
            self.inner.namespace_hooks.keys().cloned().collect();
        let others = self.inner.io.dynamic(move |name| !named.contains(name));
        self.inner.hooks.attach(&others);
    }

    /// Whether the API answers (it has keys).
    pub fn api_enabled(&self) -> bool {
        !self.inner.api_keys.is_empty()
    }

    /// The API under `/api/` in front of `inner` (requests to other paths go to `inner`).
    /// Without API keys, every request goes to `inner`.
    pub fn api_service<S>(&self, inner: S) -> ApiService<S> {
        ApiService {
            gateway: self.clone(),
            inner,
            enabled: self.api_enabled(),
        }
    }
}

/// The API under `/api/` in front of another service (see [`Gateway::api_service`]).
#[derive(Clone, Debug)]
pub struct ApiService<S> {
    gateway: Gateway,
    inner: S,
    /// Whether `/api/` is answered here (the API may listen elsewhere).
    enabled: bool,
}

impl<S> ApiService<S> {
    /// Answers `/api/` here only if `enabled` (and the gateway has API keys): a server whose
    /// API listens on an address of its own passes `false` for its public listener.
    pub fn with_api(mut self, enabled: bool) -> Self {
        self.enabled = enabled && self.gateway.api_enabled();
        self
    }
}

impl<S, B> Service<Request<B>> for ApiService<S>
where
    S: InnerService<B, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture<Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = req.uri().path().strip_prefix("/api/").map(str::to_owned);
        if let Some(method) = method.filter(|_| self.enabled) {
            let gateway = self.gateway.clone();
            return Box::pin(
                async move { Ok(box_response(gateway.handle_api(&method, req).await)) },
            );
        }
        call_inner(&mut self.inner, req)
    }
}
