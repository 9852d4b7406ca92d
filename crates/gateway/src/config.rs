//! The gateway's settings, with their defaults.

use http::{HeaderName, Uri};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the gateway: the server API and the backend hooks.
///
/// | setting | default |
/// | --- | --- |
/// | `api_keys` | none: the API is off |
/// | `api_body_limit` | 1,000,000 bytes |
/// | `api_max_new_namespaces` | 100 |
/// | `api_max_ack_timeout` | 60 s |
/// | `hooks` | none (see [`HookConfig`]) |
/// | `namespaces` | none: every namespace has `hooks` |
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Keys that open the server API (`Authorization: Bearer <key>`); several for rotation.
    /// Empty: the API answers nothing (404).
    pub api_keys: Vec<String>,
    /// The largest API request body; a larger one is answered 413.
    pub api_body_limit: usize,
    /// Namespaces the API may create on this node: a call naming a namespace this node does
    /// not have yet makes it (when a dynamic namespace accepts the name), so that it reaches
    /// the clients other nodes hold there. **When reached**, a call naming yet another unknown
    /// namespace is answered 404 `unknown_namespace` (each namespace holds memory and, on
    /// Redis, subscriptions, for the node's life).
    pub api_max_new_namespaces: usize,
    /// The longest `ack_timeout_ms` an emit may ask for; longer is answered 400.
    pub api_max_ack_timeout: Duration,
    /// The backend hooks.
    pub hooks: HookConfig,
    /// Hooks of particular namespaces (by name, e.g. `/chat`), instead of `hooks`.
    pub namespaces: BTreeMap<String, HookConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            api_keys: Vec::new(),
            api_body_limit: 1_000_000,
            api_max_new_namespaces: 100,
            api_max_ack_timeout: Duration::from_secs(60),
            hooks: HookConfig::default(),
            namespaces: BTreeMap::new(),
        }
    }
}

impl GatewayConfig {
    /// Sets [`GatewayConfig::api_keys`].
    pub fn with_api_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.api_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`GatewayConfig::api_body_limit`].
    pub fn with_api_body_limit(mut self, bytes: usize) -> Self {
        self.api_body_limit = bytes;
        self
    }

    /// Sets [`GatewayConfig::api_max_new_namespaces`].
    pub fn with_api_max_new_namespaces(mut self, n: usize) -> Self {
        self.api_max_new_namespaces = n;
        self
    }

    /// Sets [`GatewayConfig::api_max_ack_timeout`].
    pub fn with_api_max_ack_timeout(mut self, d: Duration) -> Self {
        self.api_max_ack_timeout = d;
        self
    }

    /// Sets [`GatewayConfig::hooks`].
    pub fn with_hooks(mut self, hooks: HookConfig) -> Self {
        self.hooks = hooks;
        self
    }

    /// Gives namespace `nsp` hooks of its own (see [`GatewayConfig::namespaces`]).
    pub fn with_namespace_hooks(mut self, nsp: impl Into<String>, hooks: HookConfig) -> Self {
        self.namespaces.insert(nsp.into(), hooks);
        self
    }

    /// Whether any hook is configured, for any namespace.
    pub fn any_hooks(&self) -> bool {
        self.hooks.any() || self.namespaces.values().any(HookConfig::any)
    }
}

/// Which events go to the event hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event without a handler of the application's own.
    #[default]
    All,
    /// These events only; others are ignored.
    Only(Vec<String>),
}

impl EventFilter {
    pub(crate) fn allows(&self, event: &str) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(list) => list.iter().any(|e| e == event),
        }
    }
}

/// The backend hooks: URLs socketlet POSTs to when a client connects, sends an event or
/// disconnects.
///
/// | setting | default |
/// | --- | --- |
/// | `connect`, `event`, `disconnect` | none |
/// | `events` | all |
/// | `secret` | none: requests are not signed |
/// | `timeout` | 5 s |
/// | `max_in_flight` | 256 requests at once |
/// | `max_queued_events` | 64 per socket |
/// | `headers` | `user-agent`, `accept-language`, `origin`, `referer` |
/// | `forward_cookie` | false |
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookConfig {
    /// Called on each namespace CONNECT, before the socket exists; its answer accepts or
    /// refuses the connection.
    pub connect: Option<Uri>,
    /// Called with client events (those `events` allows); its answer is the ack.
    pub event: Option<Uri>,
    /// Which events go to `event`.
    pub events: EventFilter,
    /// Called once per socket when it disconnects.
    pub disconnect: Option<Uri>,
    /// The shared secret of `X-Socketlet-Signature` (HMAC-SHA256); requests are unsigned
    /// without one.
    pub secret: Option<String>,
    /// How long a hook may take to answer; past it, the call counts as failed.
    pub timeout: Duration,
    /// Hook requests at once, across the server. **When reached**, a new call waits for a free
    /// slot up to `timeout`, then fails (a connect is refused, an event answered with an error).
    pub max_in_flight: usize,
    /// Events of one socket waiting for the event hook (it gets them one at a time, in order).
    /// **When full**, a new event is refused: its ack, if the client asked for one, carries
    /// `{"error": {"message": "too many events waiting for the backend"}}`.
    pub max_queued_events: usize,
    /// Request headers passed to the connect hook (and shown by the API's `fetch_sockets`).
    pub headers: Vec<HeaderName>,
    /// Pass the `Cookie` header too (so that a session cookie, Django's say, authenticates the
    /// user).
    pub forward_cookie: bool,
    /// Told of every hook request once it is over (for metrics).
    pub observer: Option<HookObserver>,
}

/// Told of every hook request once it is over: which hook (`connect`, `event`, `disconnect`),
/// the outcome (`ok`, or the [`crate::HookError::kind`] of the failure) and how long it took.
/// It runs on the request's task, with no lock held: keep it short.
#[derive(Clone)]
pub struct HookObserver(pub Arc<HookObserverFn>);

/// The function of a [`HookObserver`]: `(hook, outcome, elapsed)`.
pub type HookObserverFn = dyn Fn(&str, &str, Duration) + Send + Sync;

impl std::fmt::Debug for HookObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookObserver")
    }
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            connect: None,
            event: None,
            events: EventFilter::All,
            disconnect: None,
            secret: None,
            timeout: Duration::from_secs(5),
            max_in_flight: 256,
            max_queued_events: 64,
            headers: vec![
                http::header::USER_AGENT,
                http::header::ACCEPT_LANGUAGE,
                http::header::ORIGIN,
                http::header::REFERER,
            ],
            forward_cookie: false,
            observer: None,
        }
    }
}

impl HookConfig {
    /// Sets [`HookConfig::connect`].
    pub fn with_connect(mut self, url: Option<Uri>) -> Self {
        self.connect = url;
        self
    }

    /// Sets [`HookConfig::event`].
    pub fn with_event(mut self, url: Option<Uri>) -> Self {
        self.event = url;
        self
    }

    /// Sets [`HookConfig::events`].
    pub fn with_events(mut self, events: EventFilter) -> Self {
        self.events = events;
        self
    }

    /// Sets [`HookConfig::disconnect`].
    pub fn with_disconnect(mut self, url: Option<Uri>) -> Self {
        self.disconnect = url;
        self
    }

    /// Sets [`HookConfig::secret`].
    pub fn with_secret(mut self, secret: Option<String>) -> Self {
        self.secret = secret;
        self
    }

    /// Sets [`HookConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`HookConfig::max_in_flight`] (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets [`HookConfig::max_queued_events`] (at least 1).
    pub fn with_max_queued_events(mut self, n: usize) -> Self {
        self.max_queued_events = n.max(1);
        self
    }

    /// Sets [`HookConfig::headers`].
    pub fn with_headers(mut self, headers: Vec<HeaderName>) -> Self {
        self.headers = headers;
        self
    }

    /// Sets [`HookConfig::forward_cookie`].
    pub fn with_forward_cookie(mut self, forward: bool) -> Self {
        self.forward_cookie = forward;
        self
    }

    /// Sets [`HookConfig::observer`].
    pub fn with_observer(
        mut self,
        observer: impl Fn(&str, &str, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(HookObserver(Arc::new(observer)));
        self
    }

    /// Whether any hook is configured.
    pub fn any(&self) -> bool {
        self.connect.is_some() || self.event.is_some() || self.disconnect.is_some()
    }
}
